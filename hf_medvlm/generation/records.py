"""Input records (figure + caption + inline mentions), the caption/context text the papers feed their generators,
and output rows in the common training schema (TRL vision-conversation format, see docs/development.md).

Input JSONL, one figure per line (LLaVA-Med ``fig_captions`` keys are accepted too)::

    {"id": "32432162_F1", "images": ["images/32432162_F1.jpg"], "caption": "...", "mentions": ["..."],
     "fig_label": "Figure 1", "domain": "ct_scan", "modality": "", "body_part": ""}
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..files import atomic_write
from ..llm import image_to_data_url
from .parsing import filter_turn_pairs, parse_user_assistant_turns

__all__ = [
    "FigureRecord",
    "read_figure_records",
    "figure_context",
    "image_parts",
    "example_messages",
    "training_row",
    "write_jsonl",
    "record_rng",
    "replies",
    "conversation_rows",
]


@dataclass
class FigureRecord:
    id: str
    images: list[str]
    caption: str
    mentions: list[str] = field(default_factory=list)
    fig_label: str = ""
    domain: str = ""
    modality: str = ""
    body_part: str = ""


def _mentions(value) -> list[str]:
    """LLaVA-Med mentions are strings or ``{"tokens": ...}`` dicts; keep the text."""
    items = [] if value is None else value if isinstance(value, list) else [value]
    texts = [item.get("tokens", item.get("text", "")) if isinstance(item, dict) else item for item in items]
    texts = [(" ".join(text) if isinstance(text, list) else str(text)).strip() for text in texts]
    return [text for text in texts if text]


def _domain(value) -> str:
    if isinstance(value, dict):  # LLaVA-Med: {"chest_xray": false, "ct_scan": true, ...}
        return next((name for name, flag in value.items() if flag), "")
    return str(value or "")


def _record(raw: dict, where: str, base_dir: Path) -> FigureRecord:
    record_id = raw.get("id", raw.get("pair_id"))
    caption = raw.get("caption", raw.get("fig_caption"))
    if record_id is None or not caption:
        raise ValueError(f"{where}: a figure record needs 'id' (or 'pair_id') and a non-empty 'caption' (or 'fig_caption')")
    images = raw.get("images", raw.get("image"))
    if images is None and "pair_id" in raw:
        # An id becomes a file name here: refused unless it is one plain name, so no record reaches outside image_root.
        images = f"{raw['pair_id']}.jpg"
        if Path(images).name != images or "\\" in images:
            raise ValueError(f"{where}: pair_id {raw['pair_id']!r} is not a plain file name (it has a '/' or '\\')")
    images = [images] if isinstance(images, str) else list(images or [])
    images = [str(p) if Path(p).is_absolute() else str(base_dir / p) for p in images]
    return FigureRecord(
        id=str(record_id), images=images, caption=str(caption).strip(),
        mentions=_mentions(raw.get("mentions", raw.get("in_text_mention"))), fig_label=str(raw.get("fig_label") or ""),
        domain=_domain(raw.get("domain")), modality=str(raw.get("modality") or ""),
        body_part=str(raw.get("body_part") or ""),
    )


def read_figure_records(path: str | Path, image_root: str | Path | None = None) -> list[FigureRecord]:
    """Read figure records from JSONL; relative image paths resolve against ``image_root`` (default: the file's
    folder). Raises on a malformed line, naming the file and line."""
    from ..data.loading import iter_json_lines  # imports `datasets`: only when records are read

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} does not exist")
    base = Path(image_root) if image_root else path.parent
    records: dict[str, FigureRecord] = {}
    for number, raw in iter_json_lines(path):
        record = _record(raw, f"{path}:{number}", base)
        if record.id in records:
            raise ValueError(f"{path}:{number}: duplicate id {record.id!r}")
        records[record.id] = record
    return list(records.values())


def figure_context(record: FigureRecord, with_mentions: bool = True) -> str:
    """The LLaVA-Med / BioMed-VITAL context string: ``Figure Caption:\\n{label}: {caption}`` plus, when there are
    inline mentions, ``\\n\\nFigure Context:\\n\\t- {mention}`` lines (llava_med.md section 5)."""
    label = f"{record.fig_label}: " if record.fig_label else ""
    text = f"Figure Caption:\n{label}{record.caption}"
    if with_mentions and record.mentions:
        text += "\n\nFigure Context:\n" + "\n".join(f"\t- {m}" for m in record.mentions)
    return text


def image_parts(record: FigureRecord, max_images: int = 8) -> list[dict]:
    """OpenAI ``image_url`` parts (base64 PNG data URLs) for the record's images, in order."""
    parts = []
    for path in record.images[:max_images]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"record {record.id}: image file {path} does not exist")
        with Image.open(path) as image:
            parts.append({"type": "image_url", "image_url": {"url": image_to_data_url(image.convert("RGB"))}})
    return parts


def example_messages(examples: list[dict]) -> list[dict]:
    """Few-shot examples as user (their ``context``) / assistant (their ``response``) message pairs."""
    return [{"role": role, "content": example[key]} for example in examples
            for role, key in (("user", "context"), ("assistant", "response"))]


def training_row(record: FigureRecord, pairs: list[tuple[str, str]], *, row_id: str, source: str, n_images: int,
                 **extra) -> dict:
    """A training-schema row: the image blocks open the first user turn, one per image, in order."""
    messages = []
    for index, (question, answer) in enumerate(pairs):
        content = [{"type": "image"} for _ in range(n_images)] if index == 0 else []
        content.append({"type": "text", "text": question})
        messages.append({"role": "user", "content": content})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return {
        "id": row_id, "images": record.images[:n_images], "messages": messages, "source": source,
        "domain": record.domain, "modality": record.modality, "body_part": record.body_part, **extra,
    }


def _relative_images(row: dict, folder: Path) -> dict:
    images = row.get("images")
    if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
        return row
    return {**row, "images": [p if Path(p).is_absolute() else os.path.relpath(p, folder) for p in images]}


def write_jsonl(path: str | Path, rows) -> int:
    """Write all rows or nothing: a kill mid-write leaves the previous file (or none), never a shorter one. Relative
    ``images`` paths (relative to the working folder, as the readers resolved them) are rewritten relative to the
    output file's folder, the rule every reader applies, so an output is the next command's input wherever that
    command runs."""
    path = Path(path)
    count = 0
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(json.dumps(_relative_images(row, path.parent), ensure_ascii=False) + "\n")
            count += 1
    return count


def record_rng(seed: int, record_id: str, salt: str = "") -> random.Random:
    """A per-record RNG, so that a resumed run rebuilds exactly the same request for every id."""
    return random.Random(f"{seed}:{salt}:{record_id}")


def replies(items, results: dict, dropped: Counter, key=lambda item: item.id):
    """`(item, reply text)` for every item whose id has a result; the others are counted in `dropped` as `no_reply`."""
    for item in items:
        result = results.get(key(item))
        if result is None:
            dropped["no_reply"] += 1
        else:
            yield item, result["text"]


def conversation_rows(records, results: dict, *, source: str, filters=(), no_turns: str = "no_turns",
                      with_context: bool = False):
    """Training rows of `User:` / `Assistant:` transcripts, the pairs a turn filter matches dropped; returns
    ({"conversations": rows}, stats), records and turns dropped counted by reason."""
    records_by_reason, turns_by_reason, rows = Counter(), Counter(), []
    for record, text in replies(records, results, records_by_reason):
        parsed = parse_user_assistant_turns(text)
        kept, dropped = filter_turn_pairs(parsed.pairs, filters)
        turns_by_reason.update(parsed.drops)
        turns_by_reason.update(dropped)
        if not kept:
            records_by_reason[no_turns] += 1
            continue
        # The conversation is about the image, which the trainer shows once.
        extra = {"context": figure_context(record)} if with_context else {}
        rows.append(training_row(record, kept, row_id=record.id, source=source, n_images=min(1, len(record.images)),
                                 **extra))
    stats = {"records_in": len(records), "rows_out": len(rows), "dropped_records": dict(records_by_reason),
             "dropped_turns": dict(turns_by_reason)}
    return {"conversations": rows}, stats
