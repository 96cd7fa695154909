"""Every source script on small raw fixtures in the original formats (with their real quirks)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from hf_medvlm.commands.prepare import main
from tests.data.conftest import write_jpeg, write_truncated_jpeg


def _human(text):
    return {"from": "human", "value": text}


def _gpt(text):
    return {"from": "gpt", "value": text}


DOMAIN = {"chest_xray": False, "mri": True, "ct_scan": False, "histology": False, "gross": False}


@pytest.fixture
def llava_instruct_raw(tmp_path):
    images = tmp_path / "images"
    for i in range(3):
        write_jpeg(images / f"1000_F{i}.jpg", seed=i)
    write_truncated_jpeg(images / "1000_F9.jpg")
    records = [
        {"id": "1000_F0", "image": "1000_F0.jpg", "domain": DOMAIN,
         "conversations": [_human("What is shown?\n<image>"), _gpt("An MRI."), _human("Any lesion?"), _gpt("No.")]},
        {"id": "1000_F1", "image": "1000_F1.jpg", "domain": DOMAIN,
         "conversations": [_human("<image>\nDescribe it."), _gpt("A brain MRI.")]},
        # the misspelt key some released records carry
        {"id": "1000_F2", "image": "1000_F2.jpg", "domain": DOMAIN,
         "conversatons": [_human("Which sequence?\n<image>"), _gpt("T2.")]},
        {"id": "missing", "image": "nope.jpg", "domain": DOMAIN, "conversations": [_human("<image>\nQ"), _gpt("A")]},
        {"id": "broken", "image": "1000_F9.jpg", "domain": DOMAIN, "conversations": [_human("<image>\nQ"), _gpt("A")]},
        {"id": "noconv", "image": "1000_F0.jpg", "domain": DOMAIN},
        {"id": "twomarks", "image": "1000_F0.jpg", "domain": DOMAIN,
         "conversations": [_human("<image>\nQ <image>"), _gpt("A")]},
        {"id": "empty", "image": "1000_F0.jpg", "domain": DOMAIN, "conversations": [_human("<image>\nQ"), _gpt(" ")]},
        {"id": "roles", "image": "1000_F0.jpg", "domain": DOMAIN,
         "conversations": [_human("<image>\nQ"), _gpt("A"), _gpt("again")]},
    ]
    path = tmp_path / "llava_med_instruct_10k.json"
    path.write_text(json.dumps(records, indent=1))
    return path, images


def test_llava_med_instruct_skips_each_kind_of_bad_record(llava_instruct_raw, tmp_path):
    raw, images = llava_instruct_raw
    out = tmp_path / "out"
    code = main(["llava_med_instruct", "--input_path", str(raw), "--image_root", str(images), "--output_dir",
                 str(out), "--config_name", "10k", "--on_error", "skip", "--max_failure_rate", "1"])
    assert code == 0
    ds = load_dataset(str(out), name="10k", split="train")
    assert sorted(ds["id"]) == ["1000_F0", "1000_F1", "1000_F2"]
    first = ds.filter(lambda r: r["id"] == "1000_F0")[0]
    # `<image>` at the end of the first question is moved to the front, one image block per image
    assert first["messages"][0]["content"] == [{"type": "image", "text": None}, {"type": "text", "text": "What is shown?"}]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "user", "assistant"]
    assert first["domain"]["mri"] is True and first["images"][0].size == (24, 20)
    card = (out / "README.md").read_text()
    assert "cc-by-nc-4.0" in card and "research use only" in card
    for reason in ("missing_image", "undecodable_image", "no_conversation", "image_count_mismatch", "empty_turn",
                   "non_alternating_roles"):
        assert f"`{reason}` 1" in card


def test_on_error_raise_names_the_record(llava_instruct_raw, tmp_path):
    raw, images = llava_instruct_raw
    with pytest.raises(ValueError, match="'missing'.*nope.jpg"):
        main(["llava_med_instruct", "--input_path", str(raw), "--image_root", str(images), "--output_dir",
              str(tmp_path / "out"), "--config_name", "10k"])
    assert not list((tmp_path / "out").glob("10k/train-*.parquet"))  # nothing half-written


def test_several_configs_in_one_folder_round_trip(llava_instruct_raw, tmp_path):
    raw, images = llava_instruct_raw
    out = tmp_path / "out"
    for config in ("10k", "60k"):
        main(["llava_med_instruct", "--input_path", str(raw), "--image_root", str(images), "--output_dir", str(out),
              "--config_name", config, "--on_error", "skip", "--max_failure_rate", "1", "--rows_per_shard", "2"])
    assert sorted(p.name for p in (out / "60k").iterdir()) == ["train-00000-of-00002.parquet",
                                                                 "train-00001-of-00002.parquet"]
    for config in ("10k", "60k"):
        assert load_dataset(str(out), name=config, split="train").num_rows == 3
    with pytest.raises(ValueError, match="not found"):
        load_dataset(str(out), name="60k_inline_mention")


def test_llava_med_alignment_fills_missing_instruction(tmp_path):
    write_jpeg(tmp_path / "images" / "1_F1.jpg")
    raw = tmp_path / "align.json"
    raw.write_text(json.dumps([{"id": "1_F1", "image": "1_F1.jpg",
                                "conversatons": [_human("<image>"), _gpt("Axial CT of the chest.")]}]))
    main(["llava_med_alignment", "--input_path", str(raw), "--image_root", str(tmp_path / "images"),
          "--output_dir", str(tmp_path / "out")])
    row = load_dataset(str(tmp_path / "out"), name="500k", split="train")[0]
    from hf_medvlm.data.instructions import load_description_instructions

    assert row["messages"][0]["content"][1]["text"] in load_description_instructions()["brief"]


@pytest.fixture
def pubmedvision_raw(tmp_path):
    for n in range(3):
        write_jpeg(tmp_path / "images" / f"pmc_1_{n}.jpg", seed=n)
    write_jpeg(tmp_path / "images" / "pmc_2_0.jpg")
    conv = [_human("What is depicted in the images?"), _gpt("Three panels.")]
    rows = [
        {"id": "Alignment_VQA_1", "image": [f"images/pmc_1_{n}.jpg" for n in range(3)], "body_part": "Chest",
         "modality": "CT Scan", "conversations": conv},
        {"id": "Alignment_VQA_2", "image": ["images/pmc_2_0.jpg"], "body_part": "Cell", "modality": "Microscopy",
         "conversations": conv},
        {"id": "Alignment_VQA_9", "image": ["images/pmc_9_0.jpg"], "body_part": "x", "modality": "y",
         "conversations": conv},  # the release really references files missing from its zips
    ]
    (tmp_path / "PubMedVision_Alignment_VQA.json").write_text(json.dumps(rows))
    zh = [{"id": "zh_1", "image": ["images/pmc_2_0.jpg"], "Alignment_VQA_conversations": [_human("图中显示什么？"), _gpt("细胞。")],
           "Instruction-Tuning_VQA_conversations": [_human("这是什么检查？"), _gpt("显微镜。")]}]
    (tmp_path / "PubMedVision_Chinese.json").write_text(json.dumps(zh, ensure_ascii=False))
    return tmp_path


def test_pubmedvision_inserts_image_markers_and_counts_missing(pubmedvision_raw, tmp_path):
    out = tmp_path / "out"
    main(["pubmedvision", "--input_path", str(pubmedvision_raw / "PubMedVision_Alignment_VQA.json"),
          "--output_dir", str(out), "--config_name", "alignment_vqa", "--on_error", "skip", "--max_failure_rate", "1"])
    main(["pubmedvision", "--input_path", str(pubmedvision_raw / "PubMedVision_Chinese.json"),
          "--output_dir", str(out), "--config_name", "zh_instruction_tuning_vqa"])
    ds = load_dataset(str(out), name="alignment_vqa", split="train")
    multi = ds.filter(lambda r: r["id"] == "Alignment_VQA_1")[0]
    assert len(multi["images"]) == 3
    assert [b["type"] for b in multi["messages"][0]["content"]] == ["image", "image", "image", "text"]
    assert multi["modality"] == "CT Scan" and multi["body_part"] == "Chest"
    assert "`missing_image` 1" in (out / "README.md").read_text()
    zh = load_dataset(str(out), name="zh_instruction_tuning_vqa", split="train")[0]
    assert zh["messages"][1]["content"][0]["text"] == "显微镜。"


def test_biomed_vital_integer_ids(tmp_path):
    write_jpeg(tmp_path / "images" / "555_F2.jpg")
    raw = tmp_path / "BioMed-VITAL-instructions-80K.json"
    raw.write_text(json.dumps([{"id": 7, "image": "555_F2.jpg", "domain": DOMAIN,
                                "conversations": [_human("<image>\nModality?"), _gpt("MRI."),
                                                  _human("Plane?"), _gpt("Axial.")]}]))
    main(["biomed_vital", "--input_path", str(raw), "--image_root", str(tmp_path / "images"),
          "--output_dir", str(tmp_path / "out"), "--config_name", "80k"])
    row = load_dataset(str(tmp_path / "out"), name="80k", split="train")[0]
    assert row["id"] == "7" and row["source"] == "biomed_vital" and len(row["messages"]) == 4


def test_vqa_rad_public_json_quirks(tmp_path):
    write_jpeg(tmp_path / "synpic1.jpg")
    rows = [
        {"qid": 1, "image_name": "synpic1.jpg", "question": "Is there a fracture?", "answer": "No",
         "answer_type": "CLOSED ", "question_type": "PRES", "phrase_type": "test_freeform"},
        {"qid": 2, "image_name": "synpic1.jpg", "question": "How many lesions?", "answer": 2,
         "answer_type": "OPEN", "question_type": "COUNT", "phrase_type": "test_para"},
        {"qid": 3, "image_name": "synpic1.jpg", "question": "Train question?", "answer": "yes",
         "answer_type": "CLOSED", "question_type": "PRES", "phrase_type": "freeform"},
    ]
    raw = tmp_path / "VQA_RAD Dataset Public.json"
    raw.write_text(json.dumps(rows))
    main(["vqa_rad", "--input_path", str(raw), "--output_dir", str(tmp_path / "out"), "--split", "test"])
    ds = load_dataset(str(tmp_path / "out"), split="test")
    assert ds["id"] == ["1", "2"] and ds["answer"] == ["No", "2"] and ds["answer_type"] == ["closed", "open"]


def test_benchmark_train_split_becomes_a_training_config(tmp_path):
    """`train_sft` (training schema, one Q/A turn, train split) sits beside `eval` in one folder, for VQA fine-tunes."""
    write_jpeg(tmp_path / "synpic1.jpg")
    rows = [
        {"qid": 1, "image_name": "synpic1.jpg", "question": "Is there a fracture?", "answer": "No",
         "answer_type": "CLOSED", "question_type": "PRES", "phrase_type": "test_freeform"},
        {"qid": 3, "image_name": "synpic1.jpg", "question": "Which lobe?", "answer": "left upper",
         "answer_type": "OPEN", "question_type": "POS", "phrase_type": "freeform"},
    ]
    raw = tmp_path / "VQA_RAD Dataset Public.json"
    raw.write_text(json.dumps(rows))
    out = tmp_path / "out"
    main(["vqa_rad", "--input_path", str(raw), "--output_dir", str(out), "--config_name", "eval"])
    main(["vqa_rad", "--input_path", str(raw), "--output_dir", str(out), "--config_name", "train_sft"])
    train = load_dataset(str(out), name="train_sft", split="train")
    assert train["id"] == ["3"]
    assert train[0]["messages"] == [
        {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Which lobe?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "left upper"}]},
    ]
    assert len(train[0]["images"]) == 1
    assert load_dataset(str(out), name="eval", split="test")["id"] == ["1"]


def test_slake_keeps_english_only(tmp_path):
    write_jpeg(tmp_path / "imgs" / "xmlab1" / "source.jpg")
    base = {"img_id": 1, "img_name": "xmlab1/source.jpg", "location": "Lung", "modality": "CT",
            "base_type": "vqa", "content_type": "Organ", "triple": ["vhead", "_", "_"]}
    rows = [dict(base, qid=1, question="Which organ?", answer="Lung", q_lang="en", answer_type="OPEN"),
            dict(base, qid=2, question="哪个器官？", answer="肺", q_lang="zh", answer_type="OPEN"),
            dict(base, qid=3, question="Is it normal?", answer="Yes", q_lang="en", answer_type="CLOSED")]
    (tmp_path / "test.json").write_text(json.dumps(rows, ensure_ascii=False))
    main(["slake", "--input_path", str(tmp_path / "test.json"), "--output_dir", str(tmp_path / "out")])
    ds = load_dataset(str(tmp_path / "out"), split="test")
    assert ds["id"] == ["1", "3"] and ds["answer_type"] == ["open", "closed"] and ds["question_type"][0] == "Organ"


def test_path_vqa_parquet_closed_is_yes_no(tmp_path):
    write_jpeg(tmp_path / "p.jpg")
    image = (tmp_path / "p.jpg").read_bytes()
    table = pa.table({"image": [{"bytes": image, "path": None}] * 3,
                      "question": ["is this malignant?", "what stain?", "where?"],
                      "answer": ["yes", "hematoxylin and eosin", "no"]})
    pq.write_table(table, tmp_path / "test-00000-of-00001.parquet")
    main(["path_vqa", "--input_path", str(tmp_path / "test-00000-of-00001.parquet"), "--output_dir",
          str(tmp_path / "out")])
    ds = load_dataset(str(tmp_path / "out"), split="test")
    assert ds["answer_type"] == ["closed", "open", "closed"] and ds[0]["image"].size == (24, 20)


def test_pmc_vqa_csv_multiple_choice(tmp_path):
    write_jpeg(tmp_path / "images" / "PMC1_fig1.jpg")
    raw = tmp_path / "test_clean.csv"
    with raw.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D",
                         "Answer_label"])
        writer.writerow(["PMC1_fig1.jpg", "What modality?", "MRI", "A:CT", "B:MRI", "C:X-ray", "D:PET", "B"])
        writer.writerow(["PMC1_fig1.jpg", "Broken?", "x", "A:CT", "B:", "C:X-ray", "D:PET", "E"])
    main(["pmc_vqa", "--input_path", str(raw), "--image_root", str(tmp_path / "images"), "--output_dir",
          str(tmp_path / "out"), "--on_error", "skip", "--max_failure_rate", "1"])
    ds = load_dataset(str(tmp_path / "out"), split="test")
    assert ds.num_rows == 1
    assert ds[0]["options"] == ["CT", "MRI", "X-ray", "PET"] and ds[0]["answer_label"] == "B"
    assert ds[0]["answer"] == "MRI"


def test_llava_med_vqa_format(tmp_path):
    write_jpeg(tmp_path / "images" / "test" / "test_0001.jpg")
    rows = [{"id": 11, "image": "test/test_0001.jpg", "answer_type": "CLOSED", "question_type": "PRES",
             "conversations": [_human("Is there effusion?\n<image>"), _gpt("no")]},
            {"id": 12, "image": "test/test_0001.jpg", "answer_type": "OPEN", "question_type": "ORGAN",
             "conversations": [_human("<image>\nWhere is this?"), _gpt("urinary")]}]
    (tmp_path / "test.json").write_text(json.dumps(rows))
    main(["vqa_rad", "--raw_format", "llava_med", "--input_path", str(tmp_path / "test.json"), "--image_root",
          str(tmp_path / "images"), "--output_dir", str(tmp_path / "out")])
    ds = load_dataset(str(tmp_path / "out"), split="test")
    assert ds["question"] == ["Is there effusion?", "Where is this?"] and ds["answer_type"] == ["closed", "open"]


@pytest.mark.integration
def test_dataset_script_runs_as_a_script(llava_instruct_raw, tmp_path, repo_root):
    raw, images = llava_instruct_raw
    result = subprocess.run(
        [sys.executable, str(repo_root / "dataset_scripts" / "llava_med_instruct.py"), "--input_path", str(raw),
         "--image_root", str(images), "--output_dir", str(tmp_path / "out"), "--config_name", "10k",
         "--on_error", "skip", "--max_failure_rate", "1"], capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 3 rows" in result.stderr and "missing_image=1" in result.stderr


@pytest.mark.integration
def test_push_to_hub_and_load_back(llava_instruct_raw, tmp_path, hub_server):
    raw, images = llava_instruct_raw
    main(["llava_med_instruct", "--input_path", str(raw), "--image_root", str(images), "--output_dir",
          str(tmp_path / "out"), "--config_name", "10k", "--on_error", "skip", "--max_failure_rate", "1",
          "--push_to_hub", "--hub_repo_id", "tester/llava-med-instruct"])
    ds = load_dataset("tester/llava-med-instruct", name="10k", split="train")
    assert sorted(ds["id"]) == ["1000_F0", "1000_F1", "1000_F2"]


def test_every_source_has_a_dataset_script_saying_where_its_files_come_from(repo_root):
    import ast

    from hf_medvlm.data.prepare import SOURCES

    scripts = {path.stem: path.read_text() for path in (repo_root / "dataset_scripts").glob("*.py")}
    assert set(scripts) == set(SOURCES)
    for source, text in scripts.items():
        doc = ast.get_docstring(ast.parse(text))
        assert "Raw file" in doc and "https://" in doc, source
        assert all(f"`{config}`" in doc for config in SOURCES[source].configs), source
        assert f'main(["prepare", "{source}", *sys.argv[1:]])' in text, source
