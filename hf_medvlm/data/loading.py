"""One loader for every dataset a command reads: a Hub repo, a dataset folder (written by `prepare`, `select score`,
`select pick`), a `.parquet` file, or the training-schema JSONL that `generate` and `generate rate` write.

Here a JSONL's image paths are resolved against the file's folder, content blocks get the schema's `{type, text}`
shape and `images` becomes `List(Image())`: `load_dataset("json")` would leave the paths as strings and type the
blocks as a JSON extension that Parquet cannot store (docs/data_pipelines.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import datasets

__all__ = ["iter_json_lines", "load_rows", "read_jsonl_rows"]

FILE_SUFFIXES = (".parquet", ".json", ".jsonl")


def iter_json_lines(path: Path) -> Iterator[tuple[int, object]]:
    """`(line number, value)` for each non-blank line of a JSONL file, read as a stream."""
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None


def _lines(path: Path) -> list[tuple[int, object]]:
    with path.open("r", encoding="utf-8") as handle:  # the first non-blank line tells an array from JSON Lines
        is_array = next((line for line in handle if line.strip()), "").lstrip().startswith("[")
    if not is_array:
        return list(iter_json_lines(path))  # streamed: a JSONL file is read once
    try:
        return list(enumerate(json.loads(path.read_text(encoding="utf-8")), 1))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


def _normalise(row, where: str, base: Path) -> dict:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    images = row.get("images")
    if images is not None:
        if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
            raise ValueError(f"{where}: field 'images' must be a list of image paths, got {images!r:.80}")
        resolved = [Path(p) if Path(p).is_absolute() else base / p for p in images]
        missing = [str(p) for p in resolved if not p.is_file()]
        if missing:
            raise ValueError(f"{where}: image file {missing[0]} does not exist (relative paths resolve against "
                             f"{base})")
        row = {**row, "images": [str(p) for p in resolved]}
    if isinstance(row.get("messages"), list):
        row = {**row, "messages": [_message(m, where) for m in row["messages"]]}
    return row


def _message(message, where: str) -> dict:
    if not isinstance(message, dict) or not isinstance(message.get("content"), (list, str)):
        raise ValueError(f"{where}: field 'messages' must hold {{role, content}} objects, got {message!r:.80}")
    content = message["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    return {"role": message.get("role"), "content": [{"type": b.get("type"), "text": b.get("text")} for b in blocks]}


def read_jsonl_rows(path: str | Path, image_root: str | Path | None = None) -> list[dict]:
    """The rows of a training-schema `.jsonl` (or `.json` array) file, relative image paths resolved against
    `image_root` (default: the file's folder); raises ValueError naming the file, line and field of the first bad
    row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    base = Path(image_root) if image_root else path.parent
    return [_normalise(row, f"{path}:{number}", base) for number, row in _lines(path)]


def load_rows(path: str, name: str | None = None, split: str = "train") -> datasets.Dataset:
    """A dataset from a training-schema `.jsonl`/`.json` file, a `.parquet` file, a dataset folder or a Hub repo
    (`name` and `split` apply to the last two)."""
    path = str(path)
    if not path.endswith(FILE_SUFFIXES):
        return datasets.load_dataset(path, name=name, split=split)
    if not Path(path).is_file():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    if path.endswith(".parquet"):
        return datasets.load_dataset("parquet", data_files=path, split="train")
    rows = read_jsonl_rows(path)
    if not rows:
        raise ValueError(f"dataset file {path} has no rows")
    try:
        dataset = datasets.Dataset.from_list(rows)
    except (TypeError, ValueError, ArithmeticError) as err:  # pyarrow: mixed types in one column
        raise ValueError(f"{path}: the rows do not share one type per column ({err})") from None
    if "images" in dataset.column_names:
        dataset = dataset.cast_column("images", datasets.List(datasets.Image()))
    return dataset
