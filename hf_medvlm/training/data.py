"""Training data: one dataset (`dataset_name`) or a TRL mixture (`datasets:`), checked against the training schema."""

from __future__ import annotations

import logging

import datasets
from trl import get_dataset

from ..data.loading import load_rows

__all__ = ["load_training_data", "check_training_schema"]

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("messages",)


def load_training_data(script_args, mixture_args) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """Return `(train, eval)`; `eval` is None unless the mixture sets `test_split_size`."""
    if mixture_args.datasets:
        splits = get_dataset(mixture_args)
        train, evaluation = splits["train"], splits.get("test")
        source = f"a mixture of {len(mixture_args.datasets)} datasets"
    elif script_args.dataset_name:
        # a dataset folder or Hub repo, or the JSONL `hf-medvlm generate` writes (images relative to the file)
        train = load_rows(script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split)
        evaluation = None
        source = script_args.dataset_name
    else:
        raise ValueError("no training data: set dataset_name (and dataset_config) or a `datasets:` mixture")
    check_training_schema(train, source)
    logger.info("Training on %d samples from %s", len(train), source)
    return train, evaluation


def check_training_schema(dataset: datasets.Dataset, source: str) -> None:
    """Fail early, naming the column, when `dataset` is not in the training schema (docs/development.md)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"training data {source} lacks column(s) {missing}; expected `images` + `messages` "
            f"(found {dataset.column_names})"
        )
    if "images" not in dataset.column_names and "image" not in dataset.column_names:
        raise ValueError(f"training data {source} has no `images` column; vision training needs one (may be empty)")
    if len(dataset) == 0:
        raise ValueError(f"training data {source} is empty")
    first = dataset[0]["messages"]
    roles = {m.get("role") for m in first}
    if "assistant" not in roles:
        raise ValueError(f"training data {source}: record 0 has no assistant message (roles {sorted(roles)})")
