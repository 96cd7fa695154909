"""Training data: one dataset (`dataset_name`) or a TRL mixture (`datasets:`), checked against the training schema."""

from __future__ import annotations

import logging

import datasets
from trl import get_dataset

from ..data.loading import load_rows

__all__ = ["load_training_data", "check_training_schema", "check_sources"]

logger = logging.getLogger(__name__)


def check_sources(script_args, mixture_args, model_args, stage_args) -> None:
    """Every dataset and model the run reads is a local path or a readable Hub repo, checked in one request each before
    anything loads: a typo, a 404 or offline mode is one sentence at once (exit 2), not minutes of retries."""
    from ..hub import check_source

    for dataset in mixture_args.datasets or []:
        check_source(dataset.path, "dataset", what="datasets[].path")
    if not mixture_args.datasets and script_args.dataset_name:
        check_source(script_args.dataset_name, "dataset", what="dataset_name")
    if stage_args.vision_model_name_or_path:  # the fresh model replaces model_name_or_path
        check_source(stage_args.vision_model_name_or_path, "model", what="vision_model_name_or_path")
    elif model_args.model_name_or_path:
        check_source(model_args.model_name_or_path, "model", what="model_name_or_path",
                     revision=model_args.model_revision)
    if stage_args.text_model_name_or_path:
        check_source(stage_args.text_model_name_or_path, "model", what="text_model_name_or_path")


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
    if "messages" not in dataset.column_names:
        raise ValueError(f"training data {source} lacks column(s) ['messages']; expected `images` + `messages` "
                         f"(found {dataset.column_names})")
    if "images" not in dataset.column_names and "image" not in dataset.column_names:
        raise ValueError(f"training data {source} has no `images` column; vision training needs one (may be empty)")
    if len(dataset) == 0:
        raise ValueError(f"training data {source} is empty")
    roles = {m.get("role") for m in dataset[0]["messages"]}
    if "assistant" not in roles:
        raise ValueError(f"training data {source}: record 0 has no assistant message (roles {sorted(roles)})")
