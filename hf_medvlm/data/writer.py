"""Stream rows into a Hub-ready Parquet folder: `{config}/{split}-XXXXX-of-XXXXX.parquet` plus README `configs:`.

The layout is what `Dataset.push_to_hub` writes, so `load_dataset(folder, name=config)` works locally and after an
upload. Rows are encoded and written in small row groups as they arrive (memory stays flat whatever the size), and
image paths are embedded as bytes so the folder is self-contained. The README's YAML is edited with datasets' own
`MetadataConfigs` / `DatasetInfosDict` helpers instead of through `push_to_hub(set_default=...)`, which fails when a
second config is made the default (hf_stack notes §3.5).
"""

from __future__ import annotations

import contextlib
import itertools
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


def _write_shards(tmp_dir: Path, rows: Iterable[dict], features: Features, rows_per_shard: int,
                  row_group_size: int) -> tuple[list[Path], int]:
    """Encode rows as they arrive and write them to numbered shards of `rows_per_shard` rows in `tmp_dir`, in row
    groups of `row_group_size` (memory stays flat whatever the size)."""
    schema, paths, num_rows, rows = features.arrow_schema, [], 0, iter(rows)
    for first in rows:  # each pass takes the first row of a shard; the shard reads on from the same iterator
        shard = itertools.chain([first], itertools.islice(rows, rows_per_shard - 1))
        paths.append(tmp_dir / f"shard-{len(paths):05d}.parquet")
        with pq.ParquetWriter(paths[-1], schema) as writer:
            while batch := [features.encode_example(row) for row in itertools.islice(shard, row_group_size)]:
                table = embed_table_storage(pa.Table.from_pylist(batch, schema=schema))
                writer.write_table(table.replace_schema_metadata(schema.metadata))
                num_rows += len(batch)
    return paths, num_rows


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
    if config_name == "data" or not config_name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"config name {config_name!r} must be alphanumeric with - or _ and must not be 'data'")
    if not split.replace("_", "").isalnum():
        raise ValueError(f"split name {split!r} must be alphanumeric (underscores allowed)")
    output_dir = Path(output_dir)
    config_dir, new_output_dir = output_dir / config_name, not output_dir.exists()
    remove_stale_temporaries(config_dir / split)  # `.{split}.tmp-{host}-{pid}-*` of a killed run
    tmp_dir = temporary_path(config_dir / split)
    tmp_dir.mkdir(parents=True)
    try:
        rows = tqdm(rows, desc=f"writing {config_name}/{split}", unit="rows", total=total, disable=not progress)
        shards, num_rows = _write_shards(tmp_dir, rows, features, rows_per_shard, row_group_size)
        if not shards:  # `datasets` cannot load an empty split, so writing one would only hide a problem
            raise ValueError(f"{config_name}/{split}: no rows to write (were all records skipped or filtered out?); "
                             "nothing was written")
        files = [config_dir / f"{split}-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
        counts = {
            "config_name": config_name, "split": split, "num_rows": num_rows, "num_shards": len(files),
            "num_bytes": sum(path.stat().st_size for path in shards),
            "files": [str(f.relative_to(output_dir)) for f in files],
        }
        # `load_dataset` checks a split's row count against the card: the card names the new count before the
        # shards move in, so a kill while they move leaves a config that refuses to load, never part of its rows.
        update_readme_metadata(output_dir, config_name, split, features, counts, default=default)
        for stale in config_dir.glob(f"{split}-*-of-*.parquet"):
            stale.unlink()
        for path, target in zip(shards, files):
            path.replace(target)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        # An empty config folder is never left (it would look like a config with no data); the output folder only
        # if this call made it.
        for folder in [config_dir, output_dir] if new_output_dir else [config_dir]:
            with contextlib.suppress(OSError):  # not empty: other splits or files live there
                folder.rmdir()
        raise
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return counts
