"""The BioMed-VITAL selection stage (seed 002 §3.1-3.2, §4.2): export questions with two answers for clinicians and
import their choices as human preference pairs, train the selection model on clinician and model preference pairs
(mixed 1:400), score a dataset with it, and pick the top K% (globally or per K-means cluster). A recipe names its
sub-command with a top-level `command:` key."""

from __future__ import annotations

import json
import logging

from ..selection.annotation import (
    ExportAnnotationsArguments, ImportAnnotationsArguments, export_annotations, import_annotations,
)
from ..selection.arguments import PickArguments, ScoreArguments, TrainArguments
from .parser import SubCommand, parse_subcommand

EPILOG = """examples:
  hf-medvlm select export-annotations --candidates runs/cand/data/candidates.jsonl --output_dir runs/annotation
  hf-medvlm select import-annotations --annotations runs/annotation/annotation_tasks.csv \\
      --output data/biomed_vital/clinician_pairs.parquet
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
    "export-annotations": SubCommand((ExportAnnotationsArguments,),
                                     "write the clinicians' sheet: two candidate answers per question, with images"),
    "import-annotations": SubCommand((ImportAnnotationsArguments,),
                                     "read the clinicians' choices back as human preference pairs"),
    "train": SubCommand(_train_arguments, "train the selection model (optionally a sweep over the mixing weight w)"),
    "score": SubCommand((ScoreArguments,), "score every sample of a dataset with a trained selection model"),
    "pick": SubCommand((PickArguments,), "write the top K% of a scored dataset as subsets, with Precision@K / F1@K"),
}


def parse_args(argv: list[str] | None = None) -> tuple:
    """`[<sub-command>] [--config recipe.yaml] [--overrides]` -> that sub-command's dataclasses (empty for --help)."""
    return parse_subcommand(SUBCOMMANDS, argv, prog="hf-medvlm select", doc=__doc__, epilog=EPILOG)[1]


def main(argv: list[str] | None = None) -> int:
    parsed = parse_args(argv)
    if not parsed:
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if isinstance(parsed[0], (ExportAnnotationsArguments, ImportAnnotationsArguments)):
        run = export_annotations if isinstance(parsed[0], ExportAnnotationsArguments) else import_annotations
        print(json.dumps(run(parsed[0]), indent=2))
        return 0
    from ..selection.stages import run_pick, run_score, run_train

    if isinstance(parsed[0], TrainArguments):
        return run_train(*parsed)
    return run_score(parsed[0]) if isinstance(parsed[0], ScoreArguments) else run_pick(parsed[0])
