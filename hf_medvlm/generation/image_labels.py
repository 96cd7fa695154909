"""PubMedVision's image-classifier labels (Chen et al., 2024, Appendix B, Image Filtering): an MLLM says, image by
image, whether a figure is a medical image; the answers are the training set of the medical/non-medical classifier
(`hf-medvlm filter train-classifier --labels <output_dir>/data/labels.jsonl`).

One request per image (a multi-image figure gives one per panel file). The reply's first line must be exactly
"medical" or "non-medical"; anything else is counted by reason and gets no label (never guessed).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from ..llm import ChatRequest
from .prompts import load_prompt_file
from .records import FigureRecord, image_parts, replies

__all__ = ["image_job_ids", "labelling_jobs", "parse_image_label", "label_rows"]

_LABEL = re.compile(r"^[\W_]*(non[- ]?medical|medical)[\W_]*$", re.IGNORECASE)


def image_job_ids(records: list[FigureRecord]) -> list[tuple[str, str]]:
    """(request id, image path) for every image of every record; the id is `<record id>#<image index>`."""
    return [(f"{record.id}#{index}", path) for record in records for index, path in enumerate(record.images)]


def labelling_jobs(records, *, prompt_file="pubmedvision_image_labels", temperature=0.0, max_tokens=16, model=None):
    """System: what counts as a medical image; user: [the image, the one-word question]."""
    prompt = load_prompt_file(prompt_file, ("system", "question"))
    for job_id, path in image_job_ids(records):
        image = image_parts(FigureRecord(id=job_id, images=[path], caption=""), 1)
        messages = [{"role": "system", "content": prompt["system"]},
                    {"role": "user", "content": [*image, {"type": "text", "text": prompt["question"]}]}]
        yield job_id, ChatRequest(messages=messages, model=model, temperature=temperature, max_tokens=max_tokens)


def parse_image_label(text: str) -> tuple[int | None, str]:
    """(1 medical / 0 non-medical, "") or (None, reason) with reason `empty_reply` or `no_label_line`."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return None, "empty_reply"
    match = _LABEL.match(lines[0])
    if match is None:
        return None, "no_label_line"
    return (0 if match.group(1).lower().startswith("non") else 1), ""


def label_rows(records, results: dict, labels_path: str | Path, *, label_model: str = ""):
    """Rows in the classifier's training format, `{"image": path relative to the labels file, "label": 0 | 1}` (plus
    `id`, `label_model`, `label_raw`), and the counts by label and by reason for unlabelled images."""
    base = Path(labels_path).resolve().parent
    rows, counts = [], Counter()
    for (job_id, path), text in replies(image_job_ids(records), results, counts, key=lambda job: job[0]):
        label, reason = parse_image_label(text)
        if label is None:
            counts[reason] += 1
            continue
        counts["medical" if label else "non_medical"] += 1
        rows.append({"image": os.path.relpath(Path(path).resolve(), base), "label": label, "id": job_id,
                     "label_model": label_model, "label_raw": text})
    stats = {"images_in": len(image_job_ids(records)), "labelled": len(rows), "counts": dict(counts)}
    return {"labels": rows}, stats
