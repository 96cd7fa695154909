"""The BioMed-VITAL selection stage (seed 002 §3.2, §4.2): train the selection model on clinician and model preference
pairs, score a dataset with it, and pick the top K% (globally or per K-means cluster). A recipe names its sub-command
with a top-level `command:` key."""

from __future__ import annotations

import logging

from ..selection.arguments import PickArguments, ScoreArguments, TrainArguments
from .parser import SubCommand, parse_subcommand

EPILOG = """examples:
  hf-medvlm select train --config recipes/biomed-vital/selection/train.yaml --sweep_w 1,10,100,400
  hf-medvlm select score --model_name_or_path runs/selector --dataset_name data/generated --output_dir runs/scored \\
      --save_features true
  hf-medvlm select pick --dataset_name runs/scored --percents 10,50,80 --strategy clusters --output_dir runs/picked \\
      --label_column rating --label_threshold 7
"""


def _train_arguments() -> tuple:
    from ..selection.training import SelectorTrainingArguments

    return TrainArguments, SelectorTrainingArguments


SUBCOMMANDS = {
    "train": SubCommand(_train_arguments, "train the selection model (optionally a sweep over the mixing weight w)"),
    "score": SubCommand((ScoreArguments,), "score every sample of a dataset with a trained selection model"),
    "pick": SubCommand((PickArguments,), "write the top K% of a scored dataset as subsets, with Precision@K / F1@K"),
}


def parse_args(argv: list[str] | None = None) -> tuple:
    """`[train|score|pick] [--config recipe.yaml] [--overrides]` -> that sub-command's dataclasses (empty for --help)."""
    return parse_subcommand(SUBCOMMANDS, argv, prog="hf-medvlm select", doc=__doc__, epilog=EPILOG)[1]


def main(argv: list[str] | None = None) -> int:
    parsed = parse_args(argv)
    if not parsed:
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ..selection.stages import run_pick, run_score, run_train

    if isinstance(parsed[0], TrainArguments):
        return run_train(*parsed)
    return run_score(parsed[0]) if isinstance(parsed[0], ScoreArguments) else run_pick(parsed[0])
