"""What a run leaves behind besides weights: the resolved config (next to every checkpoint), model card, Hub push."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import shutil
from pathlib import Path

import yaml
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from ..files import atomic_write_text, stale_temporaries
from ..hub import push_model, write_model_card

__all__ = ["RESOLVED_CONFIG_NAME", "resolved_config", "write_resolved_config", "finish_run", "clean_output_dir"]

logger = logging.getLogger(__name__)

RESOLVED_CONFIG_NAME = "resolved_config.yaml"
INCOMPLETE = "incomplete"  # kind of the marker inside a checkpoint folder being written
# Never written to disk: secrets, and values that only make sense on the machine that parsed them.
_SKIPPED_FIELDS = {"hub_token", "local_rank", "deepspeed_plugin"}


def resolved_config(*configs) -> dict:
    """One flat mapping of every field of the parsed dataclasses: `--config` on it reproduces the run."""
    merged = {field.name: getattr(config, field.name) for config in configs for field in dataclasses.fields(config)
              if field.init and field.name not in _SKIPPED_FIELDS}
    # Plain YAML-safe values: JSON writes tuples as lists and str enums (transformers' options) as their values.
    return json.loads(json.dumps(merged, default=_plain))


def _plain(value):
    if isinstance(value, enum.Enum):
        return value.value
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)


def write_resolved_config(folder: str | Path, config: dict) -> Path:
    header = "# Resolved training config written by `hf-medvlm train`; `--config` this file to rerun.\n"
    return atomic_write_text(Path(folder) / RESOLVED_CONFIG_NAME, header + yaml.safe_dump(config, sort_keys=True))


def clean_output_dir(output_dir: str | Path, resume_from_checkpoint: str | bool | None = None) -> None:
    """Before a run writes into `output_dir`: delete the checkpoints a killed run left half-written (their writer on
    this host is dead) and an earlier README.md, so that a README there always means a finished run. A
    `resume_from_checkpoint` folder that is not there (or was one of those) is an error naming the latest good one."""
    output_dir = Path(output_dir)
    for checkpoint in sorted(output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*")):
        if checkpoint.is_dir() and stale_temporaries(checkpoint / PREFIX_CHECKPOINT_DIR, kinds=INCOMPLETE):
            logger.warning("removing %s: a killed run did not finish writing it", checkpoint)
            shutil.rmtree(checkpoint)
    (output_dir / "README.md").unlink(missing_ok=True)
    if isinstance(resume_from_checkpoint, str) and not Path(resume_from_checkpoint).is_dir():
        latest = get_last_checkpoint(output_dir) if output_dir.is_dir() else None
        raise FileNotFoundError(f"resume_from_checkpoint {resume_from_checkpoint}: no such checkpoint folder (one a "
                                f"kill cut off is removed); the latest complete checkpoint there is {latest}")


def finish_run(trainer, config: dict, *, base_models, datasets, recipe_path, push_to_hub: bool) -> None:
    """Write the model card into the run's `output_dir` (its resolved config is there since the start); push it to
    its `hub_model_id` (and `hub_revision`, `hub_private_repo`) when asked."""
    args = trainer.args
    write_model_card(
        args.output_dir,
        repo_id=args.hub_model_id,
        base_models=tuple(base_models),
        datasets=tuple(datasets),
        recipe_path=recipe_path,
        resolved_config=config,
        summary=f"Trained with `hf-medvlm train` ({config.get('stage')} stage) on TRL's SFTTrainer.",
        training_results=next((h for h in reversed(trainer.state.log_history) if "train_loss" in h), None),
    )
    if not push_to_hub:
        return
    if not args.hub_model_id:
        raise ValueError("push_to_hub is set but hub_model_id is empty; name the target repo (user/name)")
    url = push_model(args.output_dir, args.hub_model_id, revision=args.hub_revision, private=args.hub_private_repo,
                     commit_message=f"hf-medvlm train: {config.get('stage')} stage")
    logger.info("Pushed %s to %s", args.output_dir, url)
