"""Stream rows into a Hub-ready Parquet folder: `{config}/{split}-XXXXX-of-XXXXX.parquet` plus README `configs:`.

The layout is what `Dataset.push_to_hub` writes, so `load_dataset(folder, name=config)` works locally and after an
upload. Rows are encoded and written in small row groups as they arrive (memory stays flat whatever the size), and
image paths are embedded as bytes so the folder is self-contained. The README's YAML is edited with datasets' own
`MetadataConfigs` / `DatasetInfosDict` helpers instead of through `push_to_hub(set_default=...)`, which fails when a
second config is made the default (hf_stack notes §3.5).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.table import embed_table_storage
from datasets.utils.metadata import MetadataConfigs
from tqdm.auto import tqdm

from ..files import atomic_write_text, remove_stale_temporaries, temporary_path
from .card import load_card

__all__ = ["write_dataset_folder", "DEFAULT_ROWS_PER_SHARD", "ROW_GROUP_SIZE"]

DEFAULT_ROWS_PER_SHARD = 5_000
ROW_GROUP_SIZE = 100  # rows per Parquet row group; `datasets` uses 100 for image datasets too


def _shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


class _ShardedParquetWriter:
    """Writes encoded batches to numbered temporary shards; `finish` renames them to their final names."""

    def __init__(self, config_dir: Path, split: str, features: Features, rows_per_shard: int):
        # Folders this writer creates, removed again if it fails before writing anything into them.
        self.created = [d for d in (config_dir.parent, config_dir) if not d.exists()]
        remove_stale_temporaries(config_dir / split)  # `.{split}.tmp-{host}-{pid}-*` of a killed run
        self.tmp_dir = temporary_path(config_dir / split)
        self.tmp_dir.mkdir(parents=True)
        self.config_dir, self.split, self.features = config_dir, split, features
        self.schema = features.arrow_schema
        self.rows_per_shard = rows_per_shard
        self.paths: list[Path] = []
        self.writer: pq.ParquetWriter | None = None
        self.rows_in_shard = 0
        self.num_rows = 0

    def _open_next(self) -> None:
        self.close()
        path = self.tmp_dir / f"shard-{len(self.paths):05d}.parquet"
        self.paths.append(path)
        self.writer = pq.ParquetWriter(path, self.schema)
        self.rows_in_shard = 0

    def write_batch(self, encoded_rows: list[dict]) -> None:
        while encoded_rows:
            if self.writer is None or self.rows_in_shard >= self.rows_per_shard:
                self._open_next()
            room = self.rows_per_shard - self.rows_in_shard
            chunk, encoded_rows = encoded_rows[:room], encoded_rows[room:]
            table = embed_table_storage(pa.Table.from_pylist(chunk, schema=self.schema))
            self.writer.write_table(table.replace_schema_metadata(self.schema.metadata))
            self.rows_in_shard += len(chunk)
            self.num_rows += len(chunk)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close_all(self) -> list[Path]:
        """Close the last shard; returns the names the shards will have once `finish` moves them in."""
        self.close()
        if not self.num_rows:  # `datasets` cannot load an empty split, so writing one would only hide a problem
            self.abort()
            raise ValueError(f"{self.config_dir.name}/{self.split}: no rows to write (were all records skipped or "
                             "filtered out?); nothing was written")
        return [self.config_dir / _shard_name(self.split, i, len(self.paths)) for i in range(len(self.paths))]

    def finish(self) -> list[Path]:
        final = self.close_all()
        for stale in self.config_dir.glob(f"{self.split}-*-of-*.parquet"):
            stale.unlink()
        for path, target in zip(self.paths, final):
            path.replace(target)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        return final

    def abort(self) -> None:
        self.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        # An empty config folder is never left (it would look like a config with no data); the output folder only
        # if this writer made it.
        for folder in (self.config_dir, *[d for d in self.created if d != self.config_dir]):
            with contextlib.suppress(OSError):  # not empty: other splits or files live there
                folder.rmdir()


def update_readme_metadata(output_dir: Path, config_name: str, split: str, features: Features, counts: dict,
                           default: bool = False) -> None:
    """Keep README.md's `configs:` and `dataset_info:` in sync with the shards being moved in (body untouched)."""
    card = load_card(output_dir)
    configs = MetadataConfigs.from_dataset_card_data(card.data)
    entry = configs.setdefault(config_name, {})
    entry["data_files"] = [f for f in entry.get("data_files") or [] if f.get("split") != split] + [
        {"split": split, "path": f"{config_name}/{split}-*"}]
    if default:
        for other in configs.values():  # pop with a default: datasets' own set_default path raises KeyError here
            other.pop("default", None)
        entry["default"] = True
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    info = infos.get(config_name) or DatasetInfo(splits=SplitDict())
    info.features = features
    info.splits.pop(split, None)
    info.splits.add(SplitInfo(name=split, num_bytes=counts["num_bytes"], num_examples=counts["num_rows"]))
    info.download_size = info.dataset_size = sum(s.num_bytes for s in info.splits.values())
    DatasetInfosDict({config_name: info}).to_dataset_card_data(card.data)
    MetadataConfigs(configs).to_dataset_card_data(card.data)
    card.data["configs"].sort(key=lambda c: not c.get("default", False))  # default first, then by name
    atomic_write_text(output_dir / "README.md", str(card))  # never a half-written card, whose YAML would not load


def _validate_names(config_name: str, split: str) -> None:
    if config_name == "data" or not config_name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"config name {config_name!r} must be alphanumeric with - or _ and must not be 'data'")
    if not split.replace("_", "").isalnum():
        raise ValueError(f"split name {split!r} must be alphanumeric (underscores allowed)")


def write_dataset_folder(
    output_dir: str | Path, config_name: str, split: str, rows: Iterable[dict], features: Features, *,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD, row_group_size: int = ROW_GROUP_SIZE, default: bool = False,
    progress: bool = True, total: int | None = None,
) -> dict:
    """Stream `rows` into `{output_dir}/{config_name}/{split}-XXXXX-of-XXXXX.parquet` and update README.md.

    Rows are plain dicts matching `features` (images as PIL images, file paths or `{"bytes", "path"}`). Existing
    shards of the same config and split are replaced only once the new ones are complete; other configs and splits
    are kept. An empty `rows` raises `ValueError` (nothing is written). Returns `{"config_name", "split", "num_rows",
    "num_shards", "num_bytes", "files"}`.
    """
    _validate_names(config_name, split)
    output_dir = Path(output_dir)
    writer = _ShardedParquetWriter(output_dir / config_name, split, features, rows_per_shard)
    batch: list[dict] = []
    try:
        for row in tqdm(rows, desc=f"writing {config_name}/{split}", unit="rows", total=total, disable=not progress):
            batch.append(features.encode_example(row))
            if len(batch) >= row_group_size:
                writer.write_batch(batch)
                batch = []
        writer.write_batch(batch)
        files = writer.close_all()
        counts = {
            "config_name": config_name, "split": split, "num_rows": writer.num_rows, "num_shards": len(files),
            "num_bytes": sum(path.stat().st_size for path in writer.paths),
            "files": [str(f.relative_to(output_dir)) for f in files],
        }
        # `load_dataset` checks a split's row count against the card: the card names the new count before the
        # shards move in, so a kill while they move leaves a config that refuses to load, never part of its rows.
        update_readme_metadata(output_dir, config_name, split, features, counts, default=default)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return counts
