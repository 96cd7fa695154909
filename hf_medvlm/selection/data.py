"""Preference-pair data for the BioMed-VITAL selection model (seed 002 §3.2; the pair schema is in docs/selection.md).

A *candidate* is one instruction sample reduced to what the selector reads: an image, the figure caption and/or inline
mention, a question and an answer. A *pair* holds two candidates, which one is preferred (`label`: 0 -> `a`, 1 -> `b`)
and where the preference comes from (`source`: `"human"` for clinician annotations, `"model"` for LLM ratings).
Every rejected record is counted by reason in a `SkipReport`; nothing is dropped silently.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import datasets

__all__ = [
    "PAIR_FEATURES",
    "SOURCES",
    "SkipReport",
    "candidate_from_row",
    "candidate_text",
    "fit_candidate_text",
    "fit_candidate_texts",
    "encode_candidates",
    "pairs_from_ratings",
    "pairs_from_clinician_choices",
    "pair_problem",
    "validate_pairs",
    "load_pairs",
]

logger = logging.getLogger(__name__)

SOURCES = ("human", "model")
RATING_RANGE = (0, 10)  # the clinician-criteria rating prompt asks for one integer 0-10 (seed 002 Figure 9)
CAPTION_COLUMNS = ("caption", "fig_caption", "in_text_mention", "mention", "context")

_CANDIDATE = {
    "image": datasets.Image(),
    "caption": datasets.Value("string"),
    "question": datasets.Value("string"),
    "answer": datasets.Value("string"),
    "rating": datasets.Value("float32"),
}
PAIR_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "label": datasets.Value("int64"),
        **{f"{name}_{side}": feature for side in "ab" for name, feature in _CANDIDATE.items()},
    }
)


@dataclass
class SkipReport:
    """Records rejected by reason, with a few example ids per reason; `truncated` counts the texts that were
    shortened to fit the encoder (kept, not rejected), by kind (see `fit_candidate_text`)."""

    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=lambda: defaultdict(list))
    truncated: Counter = field(default_factory=Counter)

    def add(self, reason: str, record_id: Any) -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(str(record_id))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return "no records skipped"
        parts = [f"{reason}: {n} (e.g. {', '.join(self.examples[reason])})" for reason, n in self.counts.most_common()]
        return f"{self.total} records skipped -- " + "; ".join(parts)

    def to_dict(self) -> dict:
        return dict(self.counts)


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")


def _message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content.strip()
    texts = [(block.get("text") or "").strip() for block in content or [] if block.get("type") == "text"]
    return " ".join(t for t in texts if t)


def _qa_rounds(messages: list[dict]) -> list[tuple[str, str]]:
    """(question, answer) for each user turn followed by an assistant turn."""
    rounds, question = [], None
    for message in messages or []:
        if message.get("role") == "user":
            question = _message_text(message)
        elif message.get("role") == "assistant" and question:
            rounds.append((question, _message_text(message)))
            question = None
    return [(q, a) for q, a in rounds if q and a]


def candidate_from_row(row: dict, qa_rounds: int = 1) -> dict:
    """A training-schema row -> `{image, caption, question, answer}`; raises ValueError naming what is missing.

    Only the first image is used (BioMed-VITAL samples are single-image). `qa_rounds=1` keeps the first QA round as the
    released selection code does; `qa_rounds=k` appends rounds 2..k to the answer as "Question: ... Answer: ..." lines,
    `0` keeps every round.
    """
    images = row.get("images")
    image = images[0] if isinstance(images, list) and images else row.get("image")
    if image is None:
        raise ValueError("missing_image")
    rounds = _qa_rounds(row.get("messages"))
    if not rounds:
        raise ValueError("missing_text")
    kept = rounds if qa_rounds == 0 else rounds[:qa_rounds]
    answer = kept[0][1] + "".join(f"\nQuestion: {q}\nAnswer: {a}" for q, a in kept[1:])
    caption = "\n".join(str(row[c]).strip() for c in CAPTION_COLUMNS if row.get(c))
    return {"image": image, "caption": caption, "question": kept[0][0], "answer": answer}


def candidate_text(caption: str | None, question: str, answer: str, include_caption: bool = True) -> str:
    """The text the selector encodes: caption/mention (optional), then the question and the answer."""
    head = f"{caption.strip()}\n" if include_caption and caption and caption.strip() else ""
    return f"{head}Question: {question.strip()}\nAnswer: {answer.strip()}"


def _num_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text)["input_ids"])


def fit_candidate_text(tokenizer, caption: str | None, question: str, answer: str, *, include_caption: bool = True,
                       max_length: int = 256) -> tuple[str, str]:
    """`candidate_text` cut to `max_length` tokens by shortening the caption, never the question and answer.

    The caption comes first (as in the released code), so plain right truncation at CLIP's 77 tokens would cut the QA
    being judged, often entirely. Here the caption loses whole words from its end until everything fits. Returns
    `(text, outcome)` with outcome `""` (fits), `"caption_truncated"`, `"caption_dropped"`, or `"qa_truncated"` when
    the question and answer alone are longer than `max_length` (the caption is dropped and the tokenizer then cuts
    the end of the answer).
    """
    text = candidate_text(caption, question, answer, include_caption)
    if _num_tokens(tokenizer, text) <= max_length:
        return text, ""
    qa_only = candidate_text(None, question, answer, include_caption=False)
    if _num_tokens(tokenizer, qa_only) > max_length:
        return qa_only, "qa_truncated"
    words = (caption or "").split() if include_caption else []
    low = bisect.bisect_right(  # the most caption words that fit
        range(1, len(words) + 1), max_length,
        key=lambda n: _num_tokens(tokenizer, candidate_text(" ".join(words[:n]), question, answer)))
    if low == 0:
        return qa_only, "caption_dropped"
    return candidate_text(" ".join(words[:low]), question, answer), "caption_truncated"


def fit_candidate_texts(tokenizer, candidates: Iterable[dict], *, include_caption: bool = True,
                        max_length: int = 256) -> tuple[list[str], Counter]:
    """`fit_candidate_text` for each `{caption, question, answer}`; also returns the outcomes counted by kind."""
    fitted = [fit_candidate_text(tokenizer, c.get("caption"), c["question"], c["answer"],
                                 include_caption=include_caption, max_length=max_length) for c in candidates]
    return [text for text, _ in fitted], Counter(outcome for _, outcome in fitted if outcome)


def encode_candidates(processor, candidates: list[dict], *, include_caption: bool, max_length: int):
    """`{image, caption, question, answer}` candidates -> the processor's `input_ids` / `attention_mask` /
    `pixel_values` tensors, texts fitted by `fit_candidate_text`; also returns the truncation outcomes by kind."""
    texts, outcomes = fit_candidate_texts(getattr(processor, "tokenizer", processor), candidates,
                                          include_caption=include_caption, max_length=max_length)
    images = [candidate["image"].convert("RGB") for candidate in candidates]
    batch = processor(text=texts, images=images, padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
    return {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values") if k in batch}, outcomes


def _rating(row: dict, rating_column: str) -> float:
    value = row.get(rating_column)
    if value is None:
        raise ValueError("null_rating")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError("invalid_rating")
    if not RATING_RANGE[0] <= value <= RATING_RANGE[1]:
        raise ValueError("rating_out_of_range")
    return float(value)


def _rated_candidates(rows, rating_column, qa_rounds, on_error, report) -> list[dict]:
    candidates = []
    for index, row in enumerate(rows):
        record_id = row.get("id", index)
        try:
            candidates.append({**candidate_from_row(row, qa_rounds), "rating": _rating(row, rating_column),
                               "id": str(record_id)})
        except ValueError as err:
            if on_error == "raise":
                raise ValueError(f"rated record {record_id!r}: {err} (field {rating_column!r}/images/messages).")
            report.add(str(err), record_id)
    return candidates


def _sample_index_pairs(ratings: list[float], num_pairs: int, min_gap: float, rng: random.Random) -> list:
    """Distinct unordered index pairs whose ratings differ by at least `min_gap`, drawn uniformly by rejection."""
    chosen, attempts, n = set(), 0, len(ratings)
    while len(chosen) < num_pairs and attempts < 50 * num_pairs:
        attempts += 1
        i, j = rng.randrange(n), rng.randrange(n)
        if abs(ratings[i] - ratings[j]) >= min_gap:
            chosen.add((min(i, j), max(i, j)))
    return sorted(chosen)


def _make_pair(pair_id, source, preferred: dict, other: dict, rng: random.Random) -> dict:
    # Random position so that `label` is balanced and nothing can learn "a is always better".
    label = rng.randrange(2)
    a, b = (preferred, other) if label == 0 else (other, preferred)
    return {"id": pair_id, "source": source, "label": label,
            **{f"{name}_{side}": c.get(name) for side, c in (("a", a), ("b", b)) for name in _CANDIDATE}}


def pairs_from_ratings(
    rows: Iterable[dict],
    *,
    num_pairs: int | None = None,
    min_gap: float = 1,
    rating_column: str = "rating",
    qa_rounds: int = 1,
    seed: int = 0,
    on_error: str = "skip",
) -> tuple[list[dict], SkipReport]:
    """Model-rated samples -> preference pairs with `source="model"`, plus a report of skipped rows.

    Rows are in the training schema plus `rating` (int 0-10, or null when the judge reply was unparseable). As in the
    released code, two candidates form a pair when their ratings differ (by at least `min_gap`); the higher-rated one
    is preferred. `num_pairs` defaults to the number of usable rows. Rows with null, non-numeric or out-of-range
    ratings, no image or no QA round are counted by reason (`on_error="skip"`) or raise (`on_error="raise"`).
    """
    _check_on_error(on_error)
    report = SkipReport()
    candidates = _rated_candidates(rows, rating_column, qa_rounds, on_error, report)
    if report.total:
        logger.warning("pairs_from_ratings: %s", report.summary())
    ratings = [c["rating"] for c in candidates]
    if len(set(ratings)) < 2 or max(ratings) - min(ratings) < min_gap:
        raise ValueError(f"no two usable rated rows differ by at least {min_gap} in {rating_column!r}; "
                         f"{len(candidates)} usable rows ({report.summary()}).")
    rng, pairs = random.Random(seed), []
    for i, j in _sample_index_pairs(ratings, num_pairs or len(candidates), min_gap, rng):
        # The higher rating is preferred; a stable sort keeps `i` first on a tie (possible with min_gap=0).
        preferred, other = sorted((candidates[i], candidates[j]), key=lambda c: c["rating"], reverse=True)
        pairs.append(_make_pair(f"model-{preferred['id']}-{other['id']}", "model", preferred, other, rng))
    return pairs, report


def pairs_from_clinician_choices(records: Iterable[dict], *, seed: int = 0) -> list[dict]:
    """BioMed-VITAL clinician annotations (`image`/`img`, `question`, `answer_positive`, `answer_negative`, optional
    `caption`) -> `source="human"` pairs; both candidates share the image and question."""
    rng, pairs = random.Random(seed), []
    for index, record in enumerate(records):
        shared = {"image": record.get("image", record.get("img")), "caption": record.get("caption") or "",
                  "question": record.get("question")}
        preferred = {**shared, "answer": record.get("answer_positive")}
        other = {**shared, "answer": record.get("answer_negative")}
        pairs.append(_make_pair(str(record.get("id", f"human-{index}")), "human", preferred, other, rng))
    return pairs


def _image_key(image) -> str | None:
    """A content key for an image given as PIL image, `{"bytes", "path"}` dict or path."""
    if image is None:
        return None
    if isinstance(image, dict):
        if image.get("bytes"):
            return hashlib.sha1(image["bytes"]).hexdigest()
        return image.get("path") or None
    if isinstance(image, (str, Path)):
        return str(image) or None
    return hashlib.sha1(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


def pair_problem(pair: dict) -> str | None:
    """The reason a pair is unusable (`bad_source`, `bad_label`, `missing_image`, `missing_text`,
    `identical_candidates`), or None when it is fine."""
    if pair.get("source") not in SOURCES:
        return "bad_source"
    if pair.get("label") not in (0, 1) or isinstance(pair.get("label"), bool):
        return "bad_label"
    keys = [_image_key(pair.get(f"image_{side}")) for side in "ab"]
    if None in keys:
        return "missing_image"
    texts = [tuple((pair.get(f"{name}_{side}") or "").strip() for name in ("caption", "question", "answer"))
             for side in "ab"]
    if any(not t[1] or not t[2] for t in texts):
        return "missing_text"
    if keys[0] == keys[1] and texts[0] == texts[1]:
        return "identical_candidates"
    return None


def validate_pairs(pairs: datasets.Dataset | Iterable[dict], *, on_error: str = "skip", name: str = "pairs"):
    """Keep the usable pairs; count the others by reason (`on_error="skip"`) or raise on the first one.

    Returns `(pairs, report)` with `pairs` a `datasets.Dataset` in `PAIR_FEATURES`.
    """
    _check_on_error(on_error)
    report, keep = SkipReport(), []
    for index, pair in enumerate(pairs):
        if (problem := pair_problem(pair)) is None:
            keep.append(index if isinstance(pairs, datasets.Dataset) else pair)
            continue
        if on_error == "raise":
            raise ValueError(f"{name}: pair {pair.get('id', index)!r} (row {index}) is unusable: {problem}.")
        report.add(problem, pair.get("id", index))
    if report.total:
        logger.warning("%s: %s", name, report.summary())
    if not isinstance(pairs, datasets.Dataset):
        rows = [{column: pair.get(column) for column in PAIR_FEATURES} for pair in keep]
        return datasets.Dataset.from_list(rows, features=PAIR_FEATURES), report
    return (pairs if len(keep) == len(pairs) else pairs.select(keep)), report


def load_pairs(path: str, *, name: str | None = None, split: str = "train") -> datasets.Dataset:
    """Pairs from a `.json`/`.jsonl`/`.parquet` file (image paths relative to the file), a dataset folder or a Hub
    repo."""
    if path.endswith((".json", ".jsonl", ".parquet")):
        if not Path(path).is_file():
            raise FileNotFoundError(f"pairs file {path} does not exist.")
        builder = "parquet" if path.endswith(".parquet") else "json"
        dataset = datasets.load_dataset(builder, data_files=path, split="train")
        dataset = _resolve_image_paths(dataset, Path(path).parent)
    else:
        dataset = datasets.load_dataset(path, name=name, split=split)
    required = ("source", "label", "image_a", "image_b", "question_a", "answer_a")
    missing = [c for c in required if c not in dataset.column_names]
    if missing:
        raise ValueError(f"pairs {path}: missing columns {missing}; expected the pair schema (see docs/selection.md).")
    for column in set(PAIR_FEATURES) - set(dataset.column_names):
        dataset = dataset.add_column(column, [None] * len(dataset))
    return dataset.select_columns(list(PAIR_FEATURES))


def _resolve_image_paths(dataset: datasets.Dataset, root: Path) -> datasets.Dataset:
    def resolve(pair):
        paths = {f"image_{side}": pair[f"image_{side}"] for side in "ab"}
        return {column: str(root / path) if (root / path).is_file() else None  # missing file -> counted later
                for column, path in paths.items() if isinstance(path, str) and path}

    dataset = dataset.map(resolve)
    for side in "ab":
        if isinstance(dataset.features[f"image_{side}"], datasets.Value):
            dataset = dataset.cast_column(f"image_{side}", datasets.Image())
    return dataset
