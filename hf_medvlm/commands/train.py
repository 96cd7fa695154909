"""Supervised fine-tuning of LlavaMed from a recipe: LLaVA-Med stage 1 (alignment) and 2 (instruct), LoRA/QLoRA,
VQA fine-tunes. Arguments are TRL's `ScriptArguments`, `DatasetMixtureConfig`, `SFTConfig` and `ModelConfig`, plus
`StageArguments` (what TRL has no key for); a recipe key that none of them knows is an error."""

from __future__ import annotations

import sys

from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, SFTConfig

from ..training.sft import StageArguments, check_args, run_sft
from .parser import parse

EPILOG = """examples:
  hf-medvlm train --config recipes/tiny/sft/stage2.yaml --max_steps 2 --output_dir runs/tiny-stage2
  accelerate launch --config_file recipes/accelerate_configs/zero3.yaml -m hf_medvlm train \\
      --config recipes/llava-med-v1.5-mistral-7b/stage2/full.yaml
"""


def parse_args(argv: list[str] | None = None):
    """`--config recipe.yaml` plus overrides -> (script, mixture, sft, model, stage) arguments, checked together."""
    parsed = parse((ScriptArguments, DatasetMixtureConfig, SFTConfig, ModelConfig, StageArguments), argv,
                   prog="hf-medvlm train", doc=__doc__, epilog=EPILOG)
    check_args(*parsed[2:])
    return parsed


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe_path = argv[argv.index("--config") + 1] if "--config" in argv else None
    run_sft(*parse_args(argv), recipe_path=recipe_path)
    return 0
