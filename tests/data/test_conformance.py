"""`hf-medvlm prepare` on each of the nine sources, from a raw file in the release's exact layout
(`hf_medvlm/data/examples.py` names what each layout was checked against), asserting field by field what the
prepared rows hold. Nested release fields must come back structured, never as a Python repr in a text column."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest
from datasets import Value, load_dataset

from hf_medvlm.cli import main as cli_main
from hf_medvlm.data import examples as rf

IMAGE = {"type": "image", "text": None}
FLAG_ORDER = ("chest_xray", "mri", "histology", "gross", "ct_scan")  # LLaVA-Med's summarize_gpt_review.py


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def prepare(source: str, raw, out, *extra: str) -> int:
    return cli_main(["prepare", source, "--input_path", str(raw), "--output_dir", str(out), *extra])


def rows_by_id(out, config: str, split: str) -> dict:
    return {row["id"]: row for row in load_dataset(str(out), name=config, split=split)}


def build_report(out) -> dict:
    return json.loads((out / "build_report.json").read_text())


# ------------------------------------------------------------------------------------------------ LLaVA-Med


def test_llava_med_alignment(tmp_path):
    raw = rf.write_llava_med_alignment(tmp_path)
    assert prepare("llava_med_alignment", raw, tmp_path / "out", "--image_root", str(tmp_path / "images")) == 0
    rows = rows_by_id(tmp_path / "out", "500k", "train")
    assert sorted(rows) == ["17506892_F1", "29156372_F3"]
    first = rows["17506892_F1"]
    assert first["source"] == "llava_med_alignment"
    assert [image.size for image in first["images"]] == [(24, 20)]
    assert first["messages"] == [
        {"role": "user", "content": [IMAGE, text("Summarize the visual content of the image.")]},
        {"role": "assistant", "content": [text("Axial FLAIR MRI of the brain.")]},
    ]
    assert first["domain"] is None and first["modality"] is None and first["body_part"] is None
    assert rows["29156372_F3"]["messages"][0]["content"] == [IMAGE, text("Describe the image concisely.")]
    assert build_report(tmp_path / "out")["500k/train"] == {}


def test_llava_med_instruct(tmp_path):
    raw = rf.write_llava_med_instruct(tmp_path)
    out = tmp_path / "out"
    assert prepare("llava_med_instruct", raw, out, "--image_root", str(tmp_path / "images"),
                   "--config_name", "60k_inline_mention") == 0
    rows = rows_by_id(out, "60k_inline_mention", "train")
    ct = rows["32432162_F1"]
    assert ct["source"] == "llava_med_instruct" and len(ct["images"]) == 1
    assert ct["messages"] == [
        {"role": "user", "content": [IMAGE, text("What type of imaging is used here?")]},
        {"role": "assistant", "content": [text("A contrast-enhanced CT scan.")]},
        {"role": "user", "content": [text("Which organ is affected?")]},
        {"role": "assistant", "content": [text("The liver.")]},
    ]
    assert ct["domain"] == {"chest_xray": False, "mri": False, "ct_scan": True, "histology": False, "gross": False}
    assert rows["27149012_F2"]["domain"] == rf.domain("histology", "gross")
    assert rows["27149012_F2"]["messages"][0]["content"] == [IMAGE, text("What stain was used?")]
    # the conversation lost its `<image>` turn upstream: the image still comes with it, before the first question
    lost = rows["30123456_F4"]
    assert len(lost["images"]) == 1
    assert lost["messages"][0]["content"] == [IMAGE, text("Is there contrast enhancement?")]
    features = load_dataset(str(out), name="60k_inline_mention", split="train").features
    assert features["domain"] == {name: Value("bool") for name in rf.DOMAIN_KEYS}


def _qa50_expected_groups() -> Counter:
    first_true = (next(name for name in FLAG_ORDER if name in flags) for flags, _ in rf.QA50_MIX)
    return Counter(first_true)


def test_llava_med_qa50_with_images(tmp_path):
    raw = rf.write_llava_med_qa50(tmp_path, with_images=True)
    out = tmp_path / "out"
    assert prepare("llava_med_qa50", raw, out, "--image_root", str(tmp_path / "images")) == 0
    rows = rows_by_id(out, "eval", "test")
    assert sorted(rows, key=int) == [str(i) for i in range(len(rf.QA50_MIX))]
    for i, row in rows.items():
        raw_row = rf.qa50_record(int(i), *rf.QA50_MIX[int(i)], mentions=i != "4")
        assert row["source"] == "llava_med_qa50"
        assert row["image"].size == (24, 20) and row["image_name"] == raw_row["image"]
        assert row["pair_id"] == raw_row["pair_id"]
        assert row["text"] == raw_row["text"] and row["text"].endswith("\n<image>")
        assert row["question"] == raw_row["text"].removesuffix("\n<image>")
        assert row["gpt4_answer"] == raw_row["gpt4_answer"] and row["fig_caption"] == raw_row["fig_caption"]
        assert row["fig_label"] == raw_row["fig_label"] and row["type"] == raw_row["type"]
        assert row["domain"] == raw_row["domain"]  # a dict of booleans, as in the release
        assert row["in_text_mention"] == raw_row["in_text_mention"]  # list of {tokens, entities} or null
    assert rows["0"]["in_text_mention"][0]["entities"] == [
        {"type": "figure", "entity_id": "0", "start_tok": 9, "end_tok": 11}]
    assert rows["4"]["in_text_mention"] is None
    schema = pq.read_schema(next((out / "eval").glob("test-*.parquet")))
    assert str(schema.field("domain").type).startswith("struct<chest_xray: bool")
    assert str(schema.field("in_text_mention").type).startswith("list<element: struct<tokens: string")


def test_in_text_mentions_keep_their_structure():
    from hf_medvlm.data.converters import in_text_mentions
    from hf_medvlm.data.schema import RecordError

    entity = {"type": "figure", "entity_id": "3", "start_tok": 9, "end_tok": 11}
    assert in_text_mentions(None, "q") is None
    assert in_text_mentions(["A bare sentence (Fig. 3)."], "q") == [{"tokens": "A bare sentence (Fig. 3).",
                                                                      "entities": []}]
    assert in_text_mentions([{"tokens": "t", "entities": [entity]}], "q") == [{"tokens": "t", "entities": [entity]}]
    for bad in ({"tokens": "t", "entities": [{**entity, "start_tok": "9"}]}, {"tokens": "t", "page": 2},
                {"tokens": ["t"]}, 7):
        with pytest.raises(RecordError, match=r"record 'q': field 'in_text_mention'\[0\] must be"):
            in_text_mentions([bad], "q")


@pytest.mark.parametrize("image", [True, 3, 1.5])
def test_pubmedvision_image_that_is_neither_a_path_nor_a_list_is_a_named_error(image):
    """Found by the converter fuzz test at the lowest versions: `"image": true` was a TypeError, not a record error."""
    from hf_medvlm.data.converters import ImageResolver, convert_pubmedvision
    from hf_medvlm.data.schema import RecordError

    raw = {"id": "Alignment_VQA_1", "image": image, "conversations": [{"from": "human", "value": "What is shown?"}]}
    with pytest.raises(RecordError, match=rf"record 'Alignment_VQA_1': field 'image' is a {type(image).__name__} "):
        convert_pubmedvision(raw, ImageResolver(None))


def test_qa50_per_domain_grouping_equals_the_release(tmp_path):
    """prepare -> the judge's grouping function gives the release's first-true-flag domains (5 groups, not 7 reprs)."""
    from hf_medvlm.eval.judge import qa50_domain, summarize_chat_scores

    raw = rf.write_llava_med_qa50(tmp_path)
    assert prepare("llava_med_qa50", raw, tmp_path / "out", "--text_only") == 0
    rows = load_dataset(str(tmp_path / "out"), name="eval", split="test")
    groups = Counter(qa50_domain(row) for row in rows)
    assert groups == _qa50_expected_groups() == Counter(
        {"histology": 2, "ct_scan": 2, "chest_xray": 2, "mri": 1, "gross": 1})
    records = [{"question_id": r["id"], "type": r["type"], "domain": qa50_domain(r), "status": "scored",
                "reference_score": 8.0, "model_score": 4.0} for r in rows]
    summary = summarize_chat_scores(records)
    assert list(summary["by_domain"]) == list(FLAG_ORDER)
    assert {k: v["n"] for k, v in summary["by_domain"].items()} == dict(_qa50_expected_groups())


def test_qa50_missing_image_is_a_clear_error(tmp_path, capsys):
    raw = rf.write_llava_med_qa50(tmp_path)  # the release has no images
    assert prepare("llava_med_qa50", raw, tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert f"{raw}, entry 0: record '0': image file" in error and "does not exist" in error
    assert "--image_root" in error and "--text_only" in error
    assert not list((tmp_path / "out").glob("eval/test-*.parquet"))
    assert prepare("llava_med_qa50", raw, tmp_path / "out", "--on_error", "skip", "--max_failure_rate", "1") == 2
    error = capsys.readouterr().err
    assert "no rows to write" in error and "skipped 8 records: missing_image=8" in error


def test_qa50_text_only_rows_are_deliberate_and_reported(tmp_path, capsys):
    raw = rf.write_llava_med_qa50(tmp_path)
    out = tmp_path / "out"
    assert prepare("llava_med_qa50", raw, out, "--text_only") == 0
    assert "wrote 8 rows in 1 shard(s) without images (--text_only)" in capsys.readouterr().err
    rows = load_dataset(str(out), name="eval", split="test")
    assert rows["image"] == [None] * 8 and rows["image_name"][0] == "18063890_F1.jpg"
    report = build_report(out)
    assert report["eval/test"] == {} and "8 rows written without images" in report["_notes"]["eval/test"]
    assert "`eval/test`: 8 rows written without images on purpose" in (out / "README.md").read_text()
    rf.write_llava_med_qa50(tmp_path, with_images=True)  # rebuilt with the images: the note goes
    assert prepare("llava_med_qa50", raw, out, "--image_root", str(tmp_path / "images")) == 0
    assert build_report(out)["_notes"] == {} and "without images" not in (out / "README.md").read_text()
    capsys.readouterr()
    assert prepare("pubmedvision", raw, tmp_path / "out2", "--text_only") == 2
    assert "--text_only applies to llava_med_qa50 only" in capsys.readouterr().err


@pytest.mark.integration
def test_text_only_qa50_is_judged_through_eval(tmp_path, capsys):
    """issue 17: a `--text_only` qa50 set is scored by `eval --task chat --answers_file`; generating needs images."""
    from hf_medvlm.testing.openai_server import Reply, start_openai_server

    raw = rf.write_llava_med_qa50(tmp_path)
    assert prepare("llava_med_qa50", raw, tmp_path / "qa50", "--text_only") == 0
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": str(i), "text": f"answer {i}"}) + "\n"
                               for i in range(len(rf.QA50_MIX))))
    server = start_openai_server(lambda body: Reply("8 6\nfine"))
    try:
        common = ["eval", "--task", "chat", "--dataset_name", str(tmp_path / "qa50"), "--dataset_config", "eval",
                  "--llm_base_url", server.url, "--llm_model", "judge", "--llm_api_key_env", "NO_SUCH_KEY_NEEDED",
                  "--llm_cache_dir", str(tmp_path / "cache")]
        assert cli_main([*common, "--answers_file", str(answers), "--output_dir", str(tmp_path / "out")]) == 0
        contents = [r.body["messages"][1]["content"] for r in server.chat_requests()]
        judged = next(c for c in contents if "panel 0 show?" in c)  # requests run concurrently, in any order
        no_mention = next(c for c in contents if "panel 4 show?" in c)
    finally:
        server.stop()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["questions_without_image"] == 8
    by_domain = results["scores"]["llava_med_qa50"]["by_domain"]
    assert {k: v["n"] for k, v in by_domain.items()} == dict(_qa50_expected_groups())
    assert "[Question]\nWhat does panel " in judged and "?\n<image>\n\n[Assistant 1]" in judged  # v1.5's layout
    assert "Figure Context:\n\t- [{'tokens': 'Cells were not found" in judged and "'start_tok': 9" in judged
    assert "Figure Context:\n\t- None\n\n" in no_mention  # the original's f-string of a null mention list
    assert cli_main([*common, "--model_name_or_path", str(tmp_path / "never-loaded"),
                     "--output_dir", str(tmp_path / "gen")]) == 2
    assert "answers can only be generated with images" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- PubMedVision


def test_pubmedvision(tmp_path):
    raw = rf.write_pubmedvision(tmp_path)
    out = tmp_path / "out"
    assert prepare("pubmedvision", raw["alignment"], out, "--config_name", "alignment_vqa", "--on_error", "skip",
                   "--max_failure_rate", "1") == 0
    rows = rows_by_id(out, "alignment_vqa", "train")
    assert sorted(rows) == ["Alignment_VQA_1", "Alignment_VQA_2"]
    multi = rows["Alignment_VQA_1"]
    assert multi["source"] == "pubmedvision" and [im.size for im in multi["images"]] == [(24, 20)] * 3
    assert multi["messages"] == [
        {"role": "user", "content": [IMAGE, IMAGE, IMAGE, text("What is depicted in the images?")]},
        {"role": "assistant", "content": [text("Three CT slices of the chest.")]},
    ]
    assert multi["modality"] == "Computed Tomography" and multi["body_part"] == "Chest" and multi["domain"] is None
    assert build_report(out)["alignment_vqa/train"] == {"missing_image": 1}  # pmc_9_0.jpg, absent upstream too
    for config, question, answer in (("zh_alignment_vqa", "图中显示什么？", "染色的组织。"),
                                     ("zh_instruction_tuning_vqa", "这是什么检查？", "显微镜检查。")):
        assert prepare("pubmedvision", raw["chinese"], out, "--config_name", config) == 0
        row = rows_by_id(out, config, "train")["Chinese_1"]
        assert row["messages"] == [{"role": "user", "content": [IMAGE, text(question)]},
                                   {"role": "assistant", "content": [text(answer)]}]
        assert row["modality"] == "Microscopy Images" and len(row["images"]) == 1


def test_a_nested_value_in_a_text_column_is_refused(tmp_path, capsys):
    raw = rf.write_pubmedvision(tmp_path)
    records = json.loads(raw["alignment"].read_text())[:1]
    records[0]["body_part"] = {"name": "Chest"}
    raw["alignment"].write_text(json.dumps(records))
    assert prepare("pubmedvision", raw["alignment"], tmp_path / "out") == 2
    assert "entry 0: record 'Alignment_VQA_1': field 'body_part' is a dict" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- BioMed-VITAL


def test_biomed_vital(tmp_path):
    raw = rf.write_biomed_vital(tmp_path)
    out = tmp_path / "out"
    assert prepare("biomed_vital", raw, out, "--image_root", str(tmp_path / "images"), "--config_name", "150k",
                   "--on_error", "skip", "--max_failure_rate", "1") == 0
    rows = rows_by_id(out, "150k", "train")
    assert sorted(rows) == ["1", "2", "32432162_F1"]
    generated = rows["1"]
    assert generated["source"] == "biomed_vital" and len(generated["images"]) == 1
    assert generated["messages"] == [
        {"role": "user", "content": [IMAGE, text("What modality is used to take this image?")]},
        {"role": "assistant", "content": [text("Computed tomography.")]},
        {"role": "user", "content": [text("Is there a midline shift?")]},
        {"role": "assistant", "content": [text("Yes, to the left.")]},
    ]
    assert generated["domain"] == rf.domain("ct_scan")
    assert len(rows["2"]["images"]) == 1 and rows["2"]["messages"][0]["content"][0] == IMAGE  # image under `imgs`
    assert rows["32432162_F1"]["messages"][0]["content"] == [IMAGE, text("What is shown?")]
    for row in rows.values():  # a record naming an image carries it, or is counted below; never neither
        assert len(row["images"]) == sum(b["type"] == "image" for m in row["messages"] for b in m["content"]) == 1
    assert build_report(out)["150k/train"] == {"missing_image": 1, "non_alternating_roles": 1}


@pytest.mark.parametrize("record, reason, message", [
    ({"id": 9, "domain": rf.domain("mri"), "conversations": [rf.turn("human", "Q?"), rf.turn("gpt", "A.")]},
     "missing_image", "record '9': no image under 'image' or 'imgs' (keys: ['conversations', 'domain', 'id'])"),
    ({"id": 9, "image": "a.jpg", "imgs": "b.jpg", "conversations": [rf.turn("human", "Q?"), rf.turn("gpt", "A.")]},
     "bad_field", "record '9': fields ['image', 'imgs'] name different images"),
    ({"id": 9, "image": "28104940_F2.jpg", "domain": {"mri": "true"},
      "conversations": [rf.turn("human", "Q?"), rf.turn("gpt", "A.")]},
     "bad_field", "record '9': field 'domain' must map"),
])
def test_biomed_vital_bad_records_name_file_entry_and_field(tmp_path, capsys, record, reason, message):
    rf.write_biomed_vital(tmp_path)
    raw = tmp_path / "BioMed-VITAL-instructions-80K.json"
    raw.write_text(json.dumps([record]))
    assert prepare("biomed_vital", raw, tmp_path / "out", "--image_root", str(tmp_path / "images")) == 2
    assert f"{raw}, entry 0: {message}" in capsys.readouterr().err
    assert prepare("biomed_vital", raw, tmp_path / "out", "--image_root", str(tmp_path / "images"),
                   "--on_error", "skip", "--max_failure_rate", "1") == 2  # counted, and then nothing is left to write
    assert f"skipped 1 records: {reason}=1" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ VQA benchmarks


def test_vqa_rad(tmp_path):
    raw = rf.write_vqa_rad(tmp_path)
    out = tmp_path / "out"
    images = str(tmp_path / "VQA_RAD Image Folder")
    assert prepare("vqa_rad", raw, out, "--image_root", images) == 0
    test = load_dataset(str(out), name="eval", split="test")
    assert test["id"] == ["2", "3"] and test["source"] == ["vqa_rad"] * 2
    assert test["question"] == ["Is there a fracture?", "How many lesions are there?"]
    assert test["answer"] == ["No", "2"] and test["answer_type"] == ["closed", "open"]
    assert test["question_type"] == ["PRES", "COUNT"] and test["options"] == [None, None]
    assert test["answer_label"] == [None, None] and test[0]["image"].size == (24, 20)
    assert prepare("vqa_rad", raw, out, "--image_root", images, "--config_name", "train_sft") == 0
    train = rows_by_id(out, "train_sft", "train")
    assert sorted(train) == ["1", "4"]
    assert train["4"]["messages"] == [{"role": "user", "content": [IMAGE, text("Where is the lesion?")]},
                                      {"role": "assistant", "content": [text("Left frontal lobe")]}]


def test_slake(tmp_path, capsys):
    raw = rf.write_slake(tmp_path)
    out = tmp_path / "out"
    assert prepare("slake", raw, out, "--split", "train") == 2  # the release's one empty answer
    assert f"{raw}, entry 4: record '1622': field 'answer' is empty" in capsys.readouterr().err
    assert prepare("slake", raw, out, "--split", "train", "--on_error", "skip", "--max_failure_rate", "1") == 0
    rows = load_dataset(str(out), name="eval", split="train")
    assert rows["id"] == ["11934", "11936", "11937"]  # the Chinese row is left out by design, not counted
    assert rows["question"][0] == "What modality is used to take this image?" and rows["answer"] == [
        "CT", "Breathe", "Yes"]
    assert rows["answer_type"] == ["open", "open", "closed"] and rows["question_type"] == ["Modality", "KG", "Organ"]
    assert rows["source"] == ["slake"] * 3 and rows[0]["image"].size == (24, 20)
    assert build_report(out)["eval/train"] == {"empty_turn": 1}


def test_path_vqa(tmp_path):
    raw = rf.write_path_vqa(tmp_path)
    assert prepare("path_vqa", raw, tmp_path / "out") == 0
    rows = load_dataset(str(tmp_path / "out"), name="eval", split="test")
    assert rows["id"] == ["0", "1", "2"] and rows["source"] == ["path_vqa"] * 3
    assert rows["answer"] == ["yes", "granulomas", "no"]
    assert rows["answer_type"] == ["closed", "open", "closed"]
    assert rows["question_type"] == ["yes/no", "other", "yes/no"] and rows[1]["image"].size == (24, 20)


@pytest.mark.parametrize("answer_column", ["Answer", "Anwser"])
def test_pmc_vqa(tmp_path, answer_column):
    raw = rf.write_pmc_vqa(tmp_path, answer_column)
    out = tmp_path / "out"
    assert prepare("pmc_vqa", raw, out, "--image_root", str(tmp_path / "images"), "--on_error", "skip",
                   "--max_failure_rate", "1") == 0
    rows = load_dataset(str(out), name="eval", split="test")
    assert rows["id"] == ["0", "1"] and rows["source"] == ["pmc_vqa"] * 2
    assert rows["options"][0] == ["Diffuse uptake pattern", "Focal uptake pattern", "No uptake pattern",
                                  "Cannot determine from the information given"]
    assert rows["answer_label"] == ["B", "A"] and rows["answer"] == ["Focal uptake pattern", "Axial"]
    assert rows["answer_type"] == ["closed", "closed"] and rows["question_type"] == ["multiple_choice"] * 2
    assert build_report(out)["eval/test"] == {"bad_field": 1}


def test_llava_med_pvqa_answer_types(tmp_path):
    """LLaVA-Med's own PathVQA files type answers `yes/no`, `number`, `other` (v1.0 `llava/eval/run_eval_pvqa.py`)."""
    from tests.data.conftest import write_jpeg

    write_jpeg(tmp_path / "images" / "test" / "test_0648.jpg")
    turns = [rf.turn("human", "How many nuclei?\n<image>"), rf.turn("gpt", 3)]
    rows = [{"id": i, "image": "test/test_0648.jpg", "answer_type": kind, "conversatons": turns}
            for i, kind in enumerate(("yes/no", "number", "other", "CLOSED"))]
    (tmp_path / "test.json").write_text(json.dumps(rows))
    assert prepare("path_vqa", tmp_path / "test.json", tmp_path / "out", "--raw_format", "llava_med",
                   "--image_root", str(tmp_path / "images")) == 0
    prepared = load_dataset(str(tmp_path / "out"), name="eval", split="test")
    assert prepared["answer_type"] == ["closed", "open", "open", "closed"] and prepared["answer"] == ["3"] * 4
