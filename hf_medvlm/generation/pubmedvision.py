"""PubMedVision (Chen et al., 2024) data generation with an MLLM that sees the images.

- Reformatting ("unblinded", Figure 4, Appendices C-D): the MLLM sees the image(s) and the caption + inline mentions,
  under one of ten sampled QA scenarios, and answers in JSON. Each good reply yields two rows: Alignment VQA (a
  sampled single-/multi-image description question answered by ``Image_description``) and Instruction-Tuning VQA
  (``QA-query`` -> ``QA-answer``).
- Image-classifier labels (Appendix B, Image Filtering): the MLLM says, image by image, whether a figure is a medical
  image; the answers are the training set of the medical/non-medical classifier (`hf-medvlm filter train-classifier
  --labels <output_dir>/data/labels.jsonl`). One request per image (a multi-image figure gives one per panel file).
  The reply's first line must be exactly "medical" or "non-medical"; anything else is counted by reason and gets no
  label (never guessed).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from ..llm import ChatRequest
from .parsing import parse_reformat_json
from .prompts import load_prompt_file
from .records import FigureRecord, image_parts, record_rng, replies, training_row

__all__ = ["reformat_jobs", "reformat_rows", "sample_scenario", "image_job_ids", "labelling_jobs", "parse_image_label",
           "label_rows"]

REQUIRED = ("template", "scenarios", "single_image_questions", "multi_image_questions")


def sample_scenario(record: FigureRecord, prompt: dict, seed: int) -> dict:
    """One scenario per call, sampled uniformly (deterministic per record so a resumed run asks the same)."""
    return record_rng(seed, record.id, "scenario").choice(prompt["scenarios"])


def reformat_jobs(records, *, prompt_file="pubmedvision_reformat", seed=0, max_images=8, temperature=0.0,
                  max_tokens=2048, json_mode=True, model=None):
    prompt = load_prompt_file(prompt_file, REQUIRED)
    for record in records:
        scenario = sample_scenario(record, prompt, seed)
        context = "\n".join([record.caption, *record.mentions])
        text = prompt["template"].format(scenario_prompt=scenario["prompt"], contextual_text=context)
        content = [*image_parts(record, max_images), {"type": "text", "text": text}]
        yield record.id, ChatRequest(messages=[{"role": "user", "content": content}], model=model,
                                     temperature=temperature, max_tokens=max_tokens, json_mode=json_mode)


def reformat_rows(records, results: dict, *, prompt_file="pubmedvision_reformat", seed=0, max_images=8):
    """Returns ({"alignment": rows, "instruct": rows}, stats); rejected replies are counted by reason."""
    prompt = load_prompt_file(prompt_file, REQUIRED)
    rejected, scenarios, alignment, instruct, repaired = Counter(), Counter(), [], [], 0
    for record, text in replies(records, results, rejected):
        parsed = parse_reformat_json(text)
        if not parsed.ok:
            rejected[parsed.reason] += 1
            continue
        repaired += parsed.repaired
        n_images = min(len(record.images), max_images)
        pool = prompt["multi_image_questions"] if n_images > 1 else prompt["single_image_questions"]
        question = record_rng(seed, record.id, "alignment").choice(pool)
        scenario = sample_scenario(record, prompt, seed)["name"]
        scenarios[scenario] += 1
        alignment.append(training_row(record, [(question, parsed.image_description)], row_id=f"{record.id}-alignment",
                                      source="pubmedvision_alignment_vqa", n_images=n_images))
        instruct.append(training_row(record, [(parsed.qa_query, parsed.qa_answer)], row_id=f"{record.id}-instruct",
                                     source="pubmedvision_instruction_tuning_vqa", n_images=n_images,
                                     scenario=scenario))
    stats = {"records_in": len(records), "alignment_rows": len(alignment), "instruct_rows": len(instruct),
             "repaired_json": repaired, "rejected": dict(rejected), "scenarios": dict(scenarios)}
    return {"alignment": alignment, "instruct": instruct}, stats


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
    jobs, rows, counts = image_job_ids(records), [], Counter()
    for (job_id, path), text in replies(jobs, results, counts, key=lambda job: job[0]):
        label, reason = parse_image_label(text)
        if label is None:
            counts[reason] += 1
            continue
        counts["medical" if label else "non_medical"] += 1
        rows.append({"image": os.path.relpath(Path(path).resolve(), base), "label": label, "id": job_id,
                     "label_model": label_model, "label_raw": text})
    stats = {"images_in": len(jobs), "labelled": len(rows), "counts": dict(counts)}
    return {"labels": rows}, stats
