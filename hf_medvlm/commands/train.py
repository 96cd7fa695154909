"""`hf-medvlm train`: supervised fine-tuning from a recipe (LLaVA-Med stage 1/2, LoRA/QLoRA, VQA fine-tunes).

    hf-medvlm train --config recipes/llava-med-v1.5-mistral-7b/stage2/full.yaml [--overrides]
    accelerate launch --config_file recipes/accelerate_configs/zero3.yaml -m hf_medvlm train --config <recipe.yaml>

Arguments are TRL's `ScriptArguments`, `DatasetMixtureConfig`, `SFTConfig` and `ModelConfig`, plus `StageArguments`
(what TRL has no key for). A YAML key that none of them knows is an error.
"""

from __future__ import annotations

import argparse
import sys

from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, SFTConfig, TrlParser

from ..training.sft import StageArguments, check_args, run_sft

EPILOG = """example:
  hf-medvlm train --config recipes/tiny/sft/stage2.yaml --max_steps 2 --output_dir runs/tiny-stage2
  accelerate launch --config_file recipes/accelerate_configs/zero3.yaml -m hf_medvlm train \\
      --config recipes/llava-med-v1.5-mistral-7b/stage2/full.yaml
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def make_parser() -> TrlParser:
    return TrlParser(
        (ScriptArguments, DatasetMixtureConfig, SFTConfig, ModelConfig, StageArguments),
        description=__doc__.split("\n\n")[0], epilog=EPILOG, formatter_class=_HelpFormatter,
    )


def parse_args(argv: list[str] | None = None):
    """Parse `--config recipe.yaml` plus overrides into (script, mixture, sft, model, stage) arguments."""
    script_args, mixture_args, training_args, model_args, stage_args = make_parser().parse_args_and_config(argv)
    check_args(training_args, model_args, stage_args)
    return script_args, mixture_args, training_args, model_args, stage_args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe_path = argv[argv.index("--config") + 1] if "--config" in argv else None
    run_sft(*parse_args(argv), recipe_path=recipe_path)
    return 0
