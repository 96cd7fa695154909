"""Clinician preference annotation for BioMed-VITAL (seed 002 §3.1, Appendix A Figure 7), behind
`hf-medvlm select export-annotations` and `import-annotations`; docs/selection.md describes the folder and the choices.

Export: questions with two candidate answers -> an annotation folder clinicians can work in without any tool (copied
images, `annotation_tasks.csv` / `.jsonl` with `answer_A`/`answer_B` in random order, `INSTRUCTIONS.md`). Import: the
filled sheet -> human pairs in the pair schema. Rows whose question or answers no longer match the export are errors,
so an edited cell cannot become a wrong label.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

__all__ = ["ExportAnnotationsArguments", "ImportAnnotationsArguments", "export_annotations", "import_annotations",
           "CHOICES", "TASK_COLUMNS"]

TASKS_CSV, TASKS_JSONL = "annotation_tasks.csv", "annotation_tasks.jsonl"
TASK_COLUMNS = ("task_id", "image", "context", "question", "answer_A", "answer_B", "choice", "comment")
# What a clinician can answer (Appendix A): one of the two, both equally good, or neither (drop the question).
CHOICES = ("A", "B", "both", "neither")


class RowProblem(ValueError):
    """A bad row: `reason` is the short code it is counted under with `on_error="skip"`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class ExportAnnotationsArguments:
    candidates: str = field(metadata={"help": "Questions with two answers: JSONL (or JSON) rows `id, images (or "
                                              "image), context, question, answer_1, answer_2`, as written by "
                                              "`hf-medvlm generate biomed-vital-candidates` (data/candidates.jsonl)."})
    output_dir: str = field(metadata={"help": "Annotation folder to create: images/, annotation_tasks.csv, "
                                              "annotation_tasks.jsonl, INSTRUCTIONS.md."})
    image_root: str | None = field(default=None, metadata={"help": "Folder relative image paths resolve against "
                                                                    "(default: the candidates file's folder)."})
    seed: int = field(default=0, metadata={"help": "Seed of the per-question A/B order."})
    on_error: str = field(default="raise", metadata={"help": "raise | skip (and count) rows with a missing image "
                                                             "or text.", "choices": ["raise", "skip"]})


@dataclass
class ImportAnnotationsArguments:
    annotations: str = field(metadata={"help": "The filled annotation_tasks.csv or .jsonl."})
    output: str = field(metadata={"help": "Human pairs file to write (.parquet with the images embedded, or .jsonl "
                                          "with image paths relative to it): `select train --human_pairs` reads it."})
    export_dir: str | None = field(default=None, metadata={"help": "The export folder (default: the annotations "
                                                                    "file's folder); its annotation_tasks.jsonl is "
                                                                    "the reference the answers are checked against."})
    on_error: str = field(default="raise", metadata={"help": "raise | skip (and count) rows with an unknown choice "
                                                             "or edited text.", "choices": ["raise", "skip"]})


def _read_candidates(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"candidates file {path} does not exist")
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
    return rows


def _task(row: dict, number: int, root: Path, rng: random.Random) -> tuple[dict, Path]:
    """(task row, the source image of its `image` copy); raises RowProblem naming what is missing."""
    images = row.get("images", row.get("image"))
    image = images[0] if isinstance(images, list) and images else images
    texts = {key: str(row.get(key) or "").strip() for key in ("question", "answer_1", "answer_2")}
    missing = [key for key, value in {"id": row.get("id"), "image": image, **texts}.items() if not value]
    if missing:
        raise RowProblem("missing_field", f"row {number}: missing {', '.join(missing)}")
    source = root / image  # an absolute image path stays as it is
    if not source.is_file():
        raise RowProblem("missing_image", f"row {number} ({row['id']}): image file {source} does not exist")
    first, second = (texts["answer_1"], texts["answer_2"])
    if rng.random() < 0.5:  # random order, so that position says nothing about the generator's order
        first, second = second, first
    file_name = re.sub(r"[^\w.-]", "_", str(row["id"])) + source.suffix.lower()
    task = {"task_id": str(row["id"]), "image": f"images/{file_name}",
            "context": str(row.get("context") or row.get("caption") or "").strip(), "question": texts["question"],
            "answer_A": first, "answer_B": second, "choice": "", "comment": ""}
    return task, source


def export_annotations(args: ExportAnnotationsArguments) -> dict:
    """Write the annotation folder; returns (and writes into it as export_report.json) the counts."""
    path = Path(args.candidates)
    rows = _read_candidates(path)
    root, out = Path(args.image_root) if args.image_root else path.parent, Path(args.output_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tasks, skipped, seen = [], Counter(), set()
    for number, row in enumerate(rows, 1):
        try:
            task, source = _task(row, number, root, random.Random(f"{args.seed}:{row.get('id')}"))
            if task["task_id"] in seen:
                raise RowProblem("duplicate_id", f"row {number}: duplicate id {task['task_id']!r}")
        except RowProblem as err:
            if args.on_error == "raise":
                raise ValueError(f"{path}: {err}") from None
            skipped[err.reason] += 1
            continue
        seen.add(task["task_id"])
        shutil.copyfile(source, out / task["image"])
        tasks.append(task)
    with (out / TASKS_CSV).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TASK_COLUMNS)
        writer.writeheader()
        writer.writerows(tasks)
    (out / TASKS_JSONL).write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks), encoding="utf-8")
    instructions = resources.files(__package__) / "resources" / "clinician_annotation.md"
    (out / "INSTRUCTIONS.md").write_text(instructions.read_text(encoding="utf-8"), encoding="utf-8")
    report = {"candidates": len(rows), "tasks": len(tasks), "skipped": dict(skipped), "output_dir": str(out)}
    (out / "export_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _read_annotations(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"annotations file {path} does not exist")
    if path.suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:  # -sig: spreadsheets save a BOM
            return list(csv.DictReader(handle))
    return _read_candidates(path)


def _choice(value) -> str:
    """The normalised choice: "" (not annotated), one of CHOICES, or raises RowProblem."""
    text = str(value or "").strip()
    choice = {c.lower(): c for c in CHOICES}.get(text.lower(), "")
    if text and not choice:
        raise RowProblem("unknown_choice", f"choice {text!r} must be one of {', '.join(CHOICES)} (or empty)")
    return choice


def _checked(row: dict, reference: dict | None) -> dict:
    if reference is None:
        raise RowProblem("unknown_task", f"task_id {row.get('task_id')!r} is not in the export")
    edited = [key for key in ("question", "answer_A", "answer_B") if str(row.get(key, "")).strip() != reference[key]]
    if edited:
        raise RowProblem("edited_text", f"task {reference['task_id']!r}: {', '.join(edited)} differ from the export")
    return reference


def import_annotations(args: ImportAnnotationsArguments) -> dict:
    """Filled annotations -> human pairs at `args.output`; returns the counts (choices and rows left out)."""
    from .data import pairs_from_clinician_choices, validate_pairs

    if Path(args.output).suffix not in (".parquet", ".jsonl"):
        raise ValueError(f"output {args.output} must end in .parquet or .jsonl")
    path = Path(args.annotations)
    export_dir = Path(args.export_dir) if args.export_dir else path.parent
    references = {t["task_id"]: t for t in _read_candidates(export_dir / TASKS_JSONL)}
    records, counts, problems = [], Counter(), Counter()
    for number, row in enumerate(_read_annotations(path), 2 if path.suffix == ".csv" else 1):
        try:
            task = _checked(row, references.get(str(row.get("task_id", ""))))
            choice = _choice(row.get("choice"))
        except RowProblem as err:
            if args.on_error == "raise":
                raise ValueError(f"{path}:{number}: {err}") from None
            problems[err.reason] += 1
            continue
        counts[choice or "not_annotated"] += 1
        if choice in ("A", "B"):
            preferred, other = task[f"answer_{choice}"], task["answer_B" if choice == "A" else "answer_A"]
            records.append({"id": f"clinician-{task['task_id']}", "image": str(export_dir / task["image"]),
                            "caption": task["context"], "question": task["question"], "answer_positive": preferred,
                            "answer_negative": other})
    pairs, report = validate_pairs(pairs_from_clinician_choices(records), on_error=args.on_error,
                                   name=f"pairs from {path}")
    _write_pairs(pairs, Path(args.output))
    return {"rows": sum(counts.values()) + sum(problems.values()), "choices": dict(counts), "pairs": len(pairs),
            "rows_left_out": dict(problems), "pairs_left_out": report.to_dict(), "output": args.output}


def _write_pairs(pairs, output: Path) -> None:
    """Parquet with the image bytes embedded (self-contained), or JSONL with image paths relative to the file."""
    import datasets
    import pyarrow.parquet as pq
    from datasets.table import embed_table_storage

    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        pq.write_table(embed_table_storage(pairs.flatten_indices().data.table), output)
        return
    paths = datasets.Image(decode=False)
    with output.open("w", encoding="utf-8") as handle:
        for row in pairs.cast_column("image_a", paths).cast_column("image_b", paths):
            for side in "ab":
                row[f"image_{side}"] = os.path.relpath(row[f"image_{side}"]["path"], output.parent)
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
