"""What a run leaves behind besides weights: the resolved config (next to every checkpoint), model card, Hub push."""

from __future__ import annotations

import dataclasses
import enum
import logging
from pathlib import Path

import yaml
from transformers import TrainerCallback

from ..hub import push_model, write_model_card

__all__ = ["RESOLVED_CONFIG_NAME", "resolved_config", "write_resolved_config", "ResolvedConfigCallback", "finish_run"]

logger = logging.getLogger(__name__)

RESOLVED_CONFIG_NAME = "resolved_config.yaml"
# Never written to disk: secrets, and values that only make sense on the machine that parsed them.
_SKIPPED_FIELDS = {"hub_token", "local_rank", "deepspeed_plugin"}


def resolved_config(*configs) -> dict:
    """One flat mapping of every field of the parsed dataclasses: `--config` on it reproduces the run."""
    merged: dict = {}
    for config in configs:
        for field in dataclasses.fields(config):
            if field.init and field.name not in _SKIPPED_FIELDS:
                merged[field.name] = _plain(getattr(config, field.name))
    return merged


def _plain(value):
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def write_resolved_config(folder: str | Path, config: dict) -> Path:
    path = Path(folder) / RESOLVED_CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Resolved training config written by `hf-medvlm train`; `--config` this file to rerun.\n"
                    + yaml.safe_dump(config, sort_keys=True))
    return path


class ResolvedConfigCallback(TrainerCallback):
    """Writes the resolved config into every checkpoint folder, so each checkpoint says how it was made."""

    def __init__(self, config: dict):
        self.config = config

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_resolved_config(Path(args.output_dir) / f"checkpoint-{state.global_step}", self.config)


def finish_run(trainer, output_dir: str, config: dict, *, base_models, datasets, recipe_path, push_to_hub: bool,
               hub_model_id: str | None, hub_private: bool | None, hub_revision: str | None) -> str | None:
    """Write the resolved config and model card into `output_dir`; push it when asked. Returns the pushed URL."""
    write_resolved_config(output_dir, config)
    write_model_card(
        output_dir,
        repo_id=hub_model_id,
        base_models=tuple(base_models),
        datasets=tuple(datasets),
        recipe_path=recipe_path,
        resolved_config=config,
        summary=f"Trained with `hf-medvlm train` ({config.get('stage')} stage) on TRL's SFTTrainer.",
        training_results=next((h for h in reversed(trainer.state.log_history) if "train_loss" in h), None),
    )
    if not push_to_hub:
        return None
    if not hub_model_id:
        raise ValueError("push_to_hub is set but hub_model_id is empty; name the target repo (user/name)")
    url = push_model(output_dir, hub_model_id, revision=hub_revision, private=hub_private,
                     commit_message=f"hf-medvlm train: {config.get('stage')} stage")
    logger.info("Pushed %s to %s", output_dir, url)
    return url
