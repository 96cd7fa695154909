"""`hf-medvlm report` on results.json files written by the real `hf-medvlm eval` code path: the tiny model on a VQA set
and on the embedded demo eval split, scored answers files for multiple choice, and the loopback judge for qa50 and
win rate."""

import csv
import json

import pytest
from PIL import Image

from hf_medvlm.cli import main as cli_main
from hf_medvlm.testing.openai_server import start_openai_server
from tests.conftest import make_rgb_image

pytestmark = pytest.mark.integration


def _parquet(path, rows):
    import datasets

    datasets.Dataset.from_list([dict(row, image=make_rgb_image(seed=i)) for i, row in enumerate(rows)]).to_parquet(
        str(path))
    return path


def _answers(path, texts):
    path.write_text("".join(json.dumps({"question_id": qid, "text": text}) + "\n" for qid, text in texts.items()))
    return path


def _eval(out, *argv):
    assert cli_main(["eval", "--output_dir", str(out), "--max_new_tokens", "4", *argv]) == 0
    return json.loads((out / "results.json").read_text())


def _mc_run(tmp_path, runs):
    """A Medical_Multimodal_Evaluation_Data-shaped set: VQA-RAD 1 of 2 right, PMC-VQA 2 of 2, OmniMedVQA 0 of 2."""
    rows = [dict(id=f"m{i}", question="Which organ?", options=["liver", "spleen"], answer="liver",
                 answer_type="closed", dataset=dataset, subset=subset)
            for i, (dataset, subset) in enumerate([("VQA-RAD_test", ""), ("VQA-RAD_test", ""), ("PMC-VQA_test", ""),
                                                   ("PMC-VQA_test", ""), ("OmniMedVQA", "CT"), ("OmniMedVQA", "CT")])]
    data = _parquet(tmp_path / "mmed.parquet", rows)
    answers = _answers(tmp_path / "mc.jsonl", dict(zip([r["id"] for r in rows], "A B A A B B".split())))
    return _eval(runs / "mc", "--task", "multiple_choice", "--dataset_name", str(data), "--answers_file", str(answers),
                 "--benchmark_name", "Medical Multimodal Evaluation Data")


def _judged_runs(tmp_path, runs, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    rows = [dict(question_id=f"c{i}", text="What is shown?\n<image>", gpt4_answer="An effusion.", fig_caption="X-ray.",
                 fig_label="Figure 1", in_text_mention="An effusion.", type=kind, domain=domain)
            for i, (kind, domain) in enumerate([("conversation", "chest_xray"), ("detailed_description", "ct_scan")])]
    data = _parquet(tmp_path / "qa50.parquet", rows)
    mine = _answers(tmp_path / "mine.jsonl", {"c0": "An effusion.", "c1": "Nothing."})
    other = _answers(tmp_path / "other.jsonl", {"c0": "Nothing.", "c1": "Nothing."})
    with start_openai_server() as server:
        server.enqueue("8 4", "8 6", "[[A]]", "[[B]]", "[[C]]", "[[C]]")
        judge = ["--llm_base_url", server.url, "--llm_model", "judge", "--llm_concurrency", "1"]
        qa50 = _eval(runs / "qa50", "--task", "chat", "--dataset_name", str(data), "--answers_file", str(mine),
                     "--benchmark_name", "LLaVA-Med qa50", *judge)
        win = _eval(runs / "win", "--task", "win_rate", "--dataset_name", str(data), "--answers_file", str(mine),
                    "--answers_file_b", str(other), "--model_b_name", "LLaVA-Med", "--benchmark_name", "VQA-RAD",
                    *judge)
    return qa50, win


def _md_cells(markdown, prefix):
    lines = [line for line in markdown.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    return [cell.strip() for cell in lines[0].strip("|").split(" | ")]


def test_report_from_real_eval_runs(tmp_path, tiny_model_dir, vqa_parquet, repo_root, monkeypatch, capsys):
    from hf_medvlm.data.demo import write_demo_dataset

    runs, model = tmp_path / "runs", str(tiny_model_dir)
    rad = _eval(runs / "vqa_rad", "--model_name_or_path", model, "--dataset_name", str(vqa_parquet),
                "--benchmark_name", "VQA-RAD")
    # named only by its dataset_type: the mapping falls through benchmark and dataset to it
    slake = _eval(runs / "slake", "--model_name_or_path", model, "--dataset_name", str(vqa_parquet),
                  "--benchmark_name", "tiny-slake", "--dataset_type", "BoKelvin/SLAKE")
    demo_data = write_demo_dataset(tmp_path / "demo-data")
    _eval(runs / "demo", "--config", str(repo_root / "recipes/tiny/eval/demo.yaml"), "--model_name_or_path", model,
          "--dataset_name", str(demo_data), "--max_samples", "4")
    _mc_run(tmp_path, runs)
    qa50, win = _judged_runs(tmp_path, runs, monkeypatch)
    assert qa50["scores"]["llava_med_qa50"]["overall"]["relative_score"] == pytest.approx(62.5)
    capsys.readouterr()

    out = tmp_path / "report"
    assert cli_main(["report", "--results", str(runs), "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "reading 6 results.json file(s)" in printed
    demo = runs / "demo" / "results.json"
    assert f"skipped {demo}: names no known benchmark (benchmark 'hf_medvlm demo eval'" in printed
    assert "table vqa: 2 row(s) of yours, 11 published" in printed

    md = (out / "report.md").read_text()
    llava_med = _md_cells(md, f"| yours | {model} |  | llava_med |")
    expected = [f"{r['scores']['llava_med'][k]:.2f}" for r in (rad, slake) for k in ("open_recall", "closed_accuracy")]
    assert llava_med[4:8] == expected and llava_med[8:10] == ["", ""]
    assert llava_med[10] == f"{runs / 'vqa_rad' / 'results.json'}; {runs / 'slake' / 'results.json'}"
    strict = _md_cells(md, f"| yours | {model} |  | strict |")
    assert strict[4:6] == [f"{rad['scores']['strict'][k]:.2f}" for k in ("open_exact_match", "closed_accuracy")]
    assert _md_cells(md, "| paper | BioMed-VITAL 13B | 150K")[4:] == [
        "69.72", "84.86", "91.69", "90.70", "39.89", "92.42", "BioMed-VITAL Table 4"]
    mc = _md_cells(md.split("## LLaVA-Med qa50")[0], "| yours | answers ")
    assert mc[3:10] == ["huatuo_mc", "50.00", "", "", "100.00", "0.00", ""]
    assert _md_cells(md, "| paper | LLaVA-Med-7B |")[4:10] == ["51.4", "48.6", "56.8", "24.7", "44.5", "38.6"]
    chat = _md_cells(md.split("## LLaVA-Med qa50")[1], "| yours | answers ")  # the same label in the qa50 table
    assert chat[3:] == ["llava_med_qa50 (judge judge)", "50.00", "75.00", "50.00", "", "", "", "75.00", "62.50",
                        str(runs / "qa50" / "results.json")]
    assert _md_cells(md, "| yours | A vs LLaVA-Med |")[4:8] == ["50.00", "", "", "50.00"]
    assert f"| {demo} | vqa | {model} | 4 | none | left out: names no known benchmark" in md

    assert sorted(p.name for p in out.iterdir()) == ["multiple_choice.csv", "qa50.csv", "report.md", "report.png",
                                                     "vqa.csv", "win_rate.csv"]
    with open(out / "multiple_choice.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0]) == ["row", "model", "setting", "protocol", "judge", "vqa_rad", "slake", "path_vqa",
                                "pmc_vqa", "omnimedvqa", "mmmu_med", "source", "verified", "note"]
    assert (records[0]["row"], records[0]["vqa_rad"], records[0]["pmc_vqa"]) == ("yours", "50.0", "100.0")
    assert records[1]["row"] == "paper"
    assert records[1]["source"].startswith("PubMedVision Table 2; PubMedVision Table 3")
    with Image.open(out / "report.png") as image:
        assert image.format == "PNG" and image.height >= 4 * 4 * 80  # four panels
        image.verify()
