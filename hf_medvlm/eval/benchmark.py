"""Loading eval questions, resumable answers files, sharding and scoring for `hf-medvlm eval`.

Questions come in the eval schema of docs/development.md: `id`, `image` (an Image, or a list of them; `images` is
accepted too), `question`, `answer`, `answer_type` ("open" | "closed"), `question_type`, and for multiple choice
`options` + `answer_label`. Bad records never vanish: a missing image is an error, or with `on_missing_image="skip"` a
counted skip reported in results.json.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from PIL import Image

from .metrics import build_mc_prompt, compute_mc_metrics, compute_vqa_metrics, gold_letter

__all__ = [
    "Question",
    "row_id",
    "open_image",
    "load_eval_dataset",
    "questions_from_dataset",
    "read_answers",
    "append_answers",
    "check_answer_ids",
    "shard",
    "score_answers",
    "model_index_entries",
]


@dataclass
class Question:
    id: str
    prompt: str
    answer: str
    answer_type: str
    images: list = field(default_factory=list)
    options: list[str] | None = None
    gold: str | None = None
    group: str = ""
    subgroup: str = ""
    row: dict = field(default_factory=dict)  # the record itself (chat/win-rate judges read caption, type, domain)

    def load_images(self) -> list[Image.Image]:
        return [open_image(source) for source in self.images]


def load_eval_dataset(path: str, config: str | None = None, split: str = "test"):
    """`datasets.load_dataset` on a Hub id, a local Parquet folder (README `configs:`) or a .parquet/.jsonl file."""
    import datasets

    if os.path.isfile(path):
        builder = "json" if path.endswith((".json", ".jsonl")) else "parquet"
        dataset = datasets.load_dataset(builder, data_files={split: path}, split=split)
    else:
        if path.startswith((".", "/")) and not os.path.isdir(path):
            raise FileNotFoundError(f"eval dataset {path} does not exist")
        dataset = datasets.load_dataset(path, name=config, split=split)
    for column in ("image", "images"):
        feature = dataset.features.get(column)
        if isinstance(feature, datasets.Image):
            dataset = dataset.cast_column(column, datasets.Image(decode=False))
        elif isinstance(getattr(feature, "feature", None), datasets.Image):  # a list of images
            dataset = dataset.cast_column(column, datasets.List(datasets.Image(decode=False)))
    return dataset


def _image_source(value, record_id: str, data_dir: str | None):
    """Bytes or an existing path for one image; raises FileNotFoundError naming the record when it is missing."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):  # an undecoded `datasets` Image: {"bytes": ..., "path": ...}
        if value.get("bytes"):
            return value["bytes"]
        value = value.get("path")
    path = os.path.join(data_dir, value) if value and data_dir and not os.path.isabs(value) else value
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"record {record_id!r}: image {path or '(none)'} is missing")
    return path


def open_image(source) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    image.load()  # read now: thousands of lazily opened files would exhaust file handles
    return image


def _record_images(row: dict, record_id: str, data_dir: str | None) -> list:
    value = row.get("images", row.get("image"))
    values = value if isinstance(value, list) else [value]
    if not values or any(v is None for v in values):
        raise FileNotFoundError(f"record {record_id!r}: field 'image' is empty")
    # Checked now (a missing image fails before any generation), decoded only when its batch is generated.
    return [_image_source(v, record_id, data_dir) for v in values]


def row_id(row: Mapping, where: str) -> str:
    """The record's `id`, else its `question_id` (LLaVA-Med's files), as text; `where` names it in the error."""
    for key in ("id", "question_id"):
        if row.get(key) is not None:
            return str(row[key])
    raise ValueError(f"{where}: no 'id' or 'question_id' field (keys: {sorted(row)})")


def _question_from_row(row: dict, record_id: str, task: str, question_template: str, data_dir: str | None,
                       require_images: bool = True) -> Question:
    if task in ("chat", "win_rate"):
        # qa50 rows carry the question in `text` with a "<image>" marker; the chat template places the image instead.
        question = str(row.get("question") or row.get("text") or "").replace("<image>", "").strip()
        if not question:
            raise ValueError(f"record {record_id!r}: no 'question' or 'text' field")
        answer = str(row.get("answer") or row.get("gpt4_answer") or "")
        q = Question(id=record_id, prompt=question_template.format(question=question), answer=answer,
                     answer_type="open", row={k: v for k, v in row.items() if k != "images"}
                     | {"id": record_id, "question": question, "answer": answer, "image": row.get("image")})
        if row.get("images", row.get("image")) is None:
            if not require_images and task == "chat":
                return q  # a text-only qa50 set (`prepare llava_med_qa50 --text_only`) judged from an answers file
            raise FileNotFoundError(f"record {record_id!r}: field 'image' is empty; answers can only be generated "
                                    "with images (a text-only qa50 set can be judged from an existing --answers_file)")
    else:
        text = question_template.format(question=row["question"])
        q = Question(id=record_id, prompt=text, answer=str(row.get("answer") or ""),
                     answer_type=str(row.get("answer_type") or "").lower(),
                     group=str(row.get("dataset") or ""), subgroup=str(row.get("subset") or ""))
        if task == "multiple_choice":
            options = list(row["options"])  # rows without options were counted as skipped
            q.options, q.prompt = options, build_mc_prompt(text, options)
            try:
                q.gold = gold_letter(options, q.answer, row.get("answer_label") or None)
            except ValueError as err:
                raise ValueError(f"record {record_id!r}: {err}") from None
        elif q.answer_type not in ("open", "closed"):
            raise ValueError(f"record {record_id!r}: field 'answer_type' is {row.get('answer_type')!r}, "
                             "not open/closed")
    q.images = _record_images(row, record_id, data_dir)
    return q


def questions_from_dataset(dataset, task: str, question_template: str = "{question}", on_missing_image: str = "raise",
                           data_dir: str | None = None, max_samples: int | None = None,
                           require_images: bool = True) -> tuple[list[Question], Counter]:
    """Questions in dataset order, and skipped records counted by reason. Duplicate ids are an error.

    `require_images=False` lets `task="chat"` rows without an image through (the qa50 judge is text-only), for
    scoring answers that already exist; every other task needs its images."""
    questions, skipped, seen = [], Counter(), set()
    # Medical_Multimodal_Evaluation_Data has no id column: the row position (stable within a file) keys the answers.
    positional_ids = not {"id", "question_id"} & set(dataset.column_names)
    for index, row in enumerate(dataset):
        if max_samples is not None and len(questions) >= max_samples:
            break
        if positional_ids:
            row = {**row, "id": str(index)}
        if task == "multiple_choice" and (row.get("question_type") == "open" or not row.get("options")):
            skipped["not_multiple_choice"] += 1  # HuatuoGPT-Vision's scorer leaves these out as well
            continue
        record_id = row_id(row, f"record {index}")
        if record_id in seen:
            raise ValueError(f"record {record_id!r}: duplicate question id; answers are keyed by id")
        seen.add(record_id)
        try:
            questions.append(_question_from_row(row, record_id, task, question_template, data_dir, require_images))
        except FileNotFoundError:
            if on_missing_image != "skip":
                raise
            skipped["missing_image"] += 1
    return questions, skipped


# --- answers files (JSONL keyed by question id; the shape of LLaVA-Med's model_vqa.py answer files) ------------------


def read_answers(path: Path, *, repair: bool = False) -> dict[str, dict]:
    """`question_id -> record` from a JSONL answers file. A line torn by a kill (the last one) is ignored, and cut off
    with `repair` so that appending resumes on a fresh line. Every `text` must be a string: records whose `text` is
    null, a number or an object are counted and refused together, naming the file, lines and question ids."""
    from ..files import read_jsonl

    answers, malformed = {}, []
    for n, record in read_jsonl(path, repair=repair):
        if not isinstance(record, dict) or "question_id" not in record or "text" not in record:
            raise ValueError(f"{path}, line {n}: an answer needs 'question_id' and 'text' fields")
        if not isinstance(record["text"], str):
            malformed.append(f"line {n} (question_id {record['question_id']!r}): {json.dumps(record['text'])[:40]}")
        answers[str(record["question_id"])] = record
    if malformed:
        raise ValueError(f"{path}: {len(malformed)} answer(s) whose 'text' is not a string, e.g. "
                         + "; ".join(malformed[:3]))
    return answers


def append_answers(path: Path, records: list[dict]) -> None:
    # One write per line: a kill can tear only the last line, which `read_answers(repair=True)` cuts off.
    with path.open("a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()


def check_answer_ids(answers: dict[str, dict], questions: list[Question], source: str, complete: bool) -> None:
    """Every answer id must be a question id; with `complete`, every question must have an answer."""
    unknown = sorted(set(answers) - {q.id for q in questions})
    if unknown:
        raise ValueError(f"{source}: {len(unknown)} answer id(s) match no question, e.g. {unknown[:3]}; "
                         "is it the answers file of another benchmark or split?")
    missing = [q.id for q in questions if q.id not in answers]
    if complete and missing:
        raise ValueError(f"{source}: {len(missing)} question(s) have no answer, e.g. {missing[:3]}")


def shard(items: list, rank: int, world_size: int) -> list:
    """Round-robin share of one process; the union over ranks is `items`, each exactly once."""
    return items[rank::world_size]


# --- scoring and model-index -----------------------------------------------------------------------------------------


def score_answers(questions: list[Question], answers: dict[str, dict], task: str, protocols: list[str]) -> dict:
    """Scores per protocol (`{"llava_med": {...}, "strict": {...}}` or `{"huatuo_mc": {...}}`), in percent."""
    predictions = [str(answers[q.id]["text"]) for q in questions]
    if task == "multiple_choice":
        results = [compute_mc_metrics(predictions, [q.options for q in questions], [q.gold for q in questions],
                                      datasets=[q.group for q in questions], subsets=[q.subgroup for q in questions])]
    else:
        refs, types = [q.answer for q in questions], [q.answer_type for q in questions]
        results = [compute_vqa_metrics(predictions, refs, types, protocol=protocol) for protocol in protocols]
    return {result.pop("protocol"): _to_percent(result) for result in results}


def _to_percent(result: dict) -> dict:
    """Fractions as percentages, recursing into `accuracy_by_group`; counts (`num_*`, `decided_by`) as they are."""
    out = dict(result)
    for key, value in result.items():
        if isinstance(value, dict) and key.startswith("accuracy"):
            out[key] = _to_percent(value)
        elif isinstance(value, float) and not key.startswith("num_"):
            out[key] = 100 * value
    return out


# (metric key, model-index metric_type, label) per protocol; the protocol goes into metric_name.
_CARD_METRICS = {
    "llava_med": [("closed_accuracy", "accuracy", "closed accuracy"), ("open_recall", "recall", "open recall")],
    "strict": [("closed_accuracy", "accuracy", "closed accuracy"), ("open_exact_match", "exact_match",
                                                                    "open exact match"), ("open_f1", "f1", "open F1")],
    "huatuo_mc": [("accuracy", "accuracy", "multiple-choice accuracy")],
}


def _metric_entries(protocol: str, result: dict) -> list[tuple[str, float | None, str]]:
    """(model-index metric_type, value in percent or None, metric_name) of one protocol's scores."""
    judge = result.get("judge_model") or "LLM judge"
    if protocol == "llava_med_qa50":
        return [("relative_score", result["overall"]["relative_score"],
                 f"relative score (%, llava_med qa50, judge {judge})")]
    if protocol == "biomed_vital_win_rate":
        value = None if result["win_rate"] is None else 100 * result["win_rate"]
        return [("win_rate", value, f"win rate vs {result['model_b']} (%, biomed_vital both orders, judge {judge})")]
    return [(metric_type, result.get(key), f"{label} (%, {protocol})")
            for key, metric_type, label in _CARD_METRICS.get(protocol, [])]


def model_index_entries(scores: dict, *, dataset_type: str, dataset_name: str, dataset_config: str | None,
                        dataset_split: str) -> list[dict]:
    """`huggingface_hub.EvalResult` keyword arguments, one per reported number, protocol named in `metric_name`."""
    return [dict(task_type="visual-question-answering", dataset_type=dataset_type, dataset_name=dataset_name,
                 dataset_config=dataset_config, dataset_split=dataset_split, metric_type=metric_type,
                 metric_value=round(value, 2), metric_name=name)
            for protocol, result in scores.items()
            for metric_type, value, name in _metric_entries(protocol, result) if value is not None]
