"""Clinician annotation round trip: candidates with two answers -> annotation sheet -> filled choices -> human pairs."""

import csv
import json

import pyarrow.parquet as pq
import pytest

from hf_medvlm.commands.select import main
from hf_medvlm.selection.annotation import ImportAnnotationsArguments, import_annotations
from hf_medvlm.selection.data import load_pairs, validate_pairs
from tests.conftest import make_rgb_image


@pytest.fixture
def annotation_dir(tmp_path):
    """Five questions with two answers each, as `generate biomed-vital-candidates` writes them, then exported."""
    (tmp_path / "figs").mkdir()
    rows = []
    for i in range(5):
        make_rgb_image(40, 30 + i, seed=i).save(tmp_path / "figs" / f"PMC{i}_F1.png")
        rows.append({"id": f"PMC{i}_F1-q0", "images": [f"figs/PMC{i}_F1.png"], "context": f"Figure Caption:\nCT {i}",
                     "question": f"What is shown in figure {i}?", "answer_1": f"first answer {i}",
                     "answer_2": f"second answer {i}", "domain": "ct_scan", "generator": "loopback"})
    (tmp_path / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["export-annotations", "--candidates", str(tmp_path / "candidates.jsonl"),
                 "--output_dir", str(tmp_path / "annotation")]) == 0
    return tmp_path / "annotation"


def _fill(folder, choices, edit=None):
    with (folder / "annotation_tasks.csv").open(encoding="utf-8", newline="") as handle:
        tasks = list(csv.DictReader(handle))
    for task, choice in zip(tasks, choices):
        task["choice"] = choice
    if edit:
        tasks[0]["answer_A"] += edit
    with (folder / "filled.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(tasks[0]))
        writer.writeheader()
        writer.writerows(tasks)
    return tasks


def test_export_writes_a_sheet_annotators_can_use(annotation_dir):
    with (annotation_dir / "annotation_tasks.csv").open(encoding="utf-8", newline="") as handle:
        tasks = list(csv.DictReader(handle))
    assert list(tasks[0]) == ["task_id", "image", "context", "question", "answer_A", "answer_B", "choice", "comment"]
    assert len(tasks) == 5 and all((annotation_dir / t["image"]).is_file() for t in tasks)
    assert all(t["choice"] == "" and t["context"].startswith("Figure Caption:") for t in tasks)
    firsts = [t["answer_A"].startswith("first") for t in tasks]
    assert 0 < sum(firsts) < 5  # the A/B order is shuffled per question (seeded)
    assert "| `neither` |" in (annotation_dir / "INSTRUCTIONS.md").read_text()
    assert json.loads((annotation_dir / "export_report.json").read_text())["tasks"] == 5
    assert len((annotation_dir / "annotation_tasks.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_choices_come_back_as_human_pairs(annotation_dir, tmp_path, capsys, suffix):
    tasks = _fill(annotation_dir, ["A", "b", "both", "neither", ""])
    out = tmp_path / f"clinician_pairs{suffix}"
    assert main(["import-annotations", "--annotations", str(annotation_dir / "filled.csv"), "--output", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["choices"] == {"A": 1, "B": 1, "both": 1, "neither": 1, "not_annotated": 1}
    assert summary["pairs"] == 2

    pairs, report = validate_pairs(load_pairs(str(out)), on_error="raise")
    assert report.total == 0 and pairs["source"] == ["human", "human"]
    chosen = {tasks[0]["task_id"]: tasks[0]["answer_A"], tasks[1]["task_id"]: tasks[1]["answer_B"]}
    for pair in pairs:
        preferred, other = ("a", "b") if pair["label"] == 0 else ("b", "a")
        task_id = pair["id"].removeprefix("clinician-")
        assert pair[f"answer_{preferred}"] == chosen[task_id] and pair[f"answer_{other}"] != chosen[task_id]
        assert pair["question_a"] == pair["question_b"] and pair["caption_a"].startswith("Figure Caption:")
        assert pair["image_a"].size == (40, 30 + int(task_id[3]))
    if suffix == ".parquet":  # self-contained: the images travel inside the file
        assert all(cell["bytes"] for cell in pq.read_table(out).column("image_a").to_pylist())


def test_edited_answers_and_unknown_choices_are_refused_or_counted(annotation_dir, tmp_path):
    _fill(annotation_dir, ["A", "maybe", "B", "", ""], edit=" (corrected)")
    args = ImportAnnotationsArguments(annotations=str(annotation_dir / "filled.csv"),
                                      output=str(tmp_path / "pairs.parquet"))
    with pytest.raises(ValueError, match=r"filled.csv:2: task .*answer_A differ from the export"):
        import_annotations(args)
    args.on_error = "skip"
    summary = import_annotations(args)
    assert summary["rows_left_out"] == {"edited_text": 1, "unknown_choice": 1}
    assert summary["pairs"] == 1 and summary["choices"] == {"B": 1, "not_annotated": 2}
    with pytest.raises(ValueError, match="must end in .parquet or .jsonl"):
        import_annotations(ImportAnnotationsArguments(annotations=args.annotations, output=str(tmp_path / "p.csv")))


def test_export_names_a_missing_image(tmp_path):
    (tmp_path / "candidates.jsonl").write_text(json.dumps(
        {"id": "x", "images": ["nope.png"], "question": "q", "answer_1": "a", "answer_2": "b"}) + "\n")
    with pytest.raises(ValueError, match=r"row 1 \(x\): image file .*nope.png does not exist"):
        main(["export-annotations", "--candidates", str(tmp_path / "candidates.jsonl"),
              "--output_dir", str(tmp_path / "out")])
