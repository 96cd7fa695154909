"""`hf-medvlm select train|score|pick|export-annotations|import-annotations`: the BioMed-VITAL selection stage
(seed 002 §3.1-3.2, §4.2) and its clinician annotation step.

    hf-medvlm select export-annotations --candidates runs/cand/data/candidates.jsonl --output_dir runs/annotation
    hf-medvlm select import-annotations --annotations runs/annotation/annotation_tasks.csv --output pairs.parquet
    hf-medvlm select train --config recipes/biomed-vital/selection/train.yaml [--sweep_w 1,10,100]
    hf-medvlm select score --model_name_or_path runs/selector --dataset_name data/generated --output_dir runs/scored
    hf-medvlm select pick --dataset_name runs/scored --percents 10,50,80 --strategy global --output_dir runs/selected

A recipe names its subcommand with a top-level `command:` key; `parse_args` returns the dataclasses of that command.
"""

from __future__ import annotations

import json
import logging
import sys

import yaml
from transformers import HfArgumentParser

from ..selection.annotation import (
    ExportAnnotationsArguments,
    ImportAnnotationsArguments,
    export_annotations,
    import_annotations,
)
from ..selection.stages import PickArguments, ScoreArguments, TrainArguments, run_pick, run_score, run_train
from ..selection.training import SelectorTrainingArguments

COMMANDS = {
    "train": (TrainArguments, SelectorTrainingArguments),
    "score": (ScoreArguments,),
    "pick": (PickArguments,),
    "export-annotations": (ExportAnnotationsArguments,),
    "import-annotations": (ImportAnnotationsArguments,),
}
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


def _split_command(argv: list[str]) -> tuple[str, list[str]]:
    """The subcommand comes first on the command line, or from the recipe's `command:` key."""
    argv = list(argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else None
    if "--config" in argv:
        position = argv.index("--config")
        with open(argv[position + 1]) as handle:
            recipe = yaml.safe_load(handle) or {}
        from_recipe = recipe.get("command")
        if command and from_recipe and from_recipe != command:
            raise ValueError(f"{argv[position + 1]}: recipe is for `select {from_recipe}`, not `select {command}`.")
        command = command or from_recipe
    if command not in COMMANDS:
        raise ValueError(f"select: give a subcommand ({' | '.join(COMMANDS)}) or a recipe with a `command:` key.")
    return command, argv


def _parser(command: str) -> HfArgumentParser:
    return HfArgumentParser(COMMANDS[command], prog=f"hf-medvlm select {command}", epilog=EPILOG,
                            formatter_class=__import__("argparse").RawDescriptionHelpFormatter)


def parse_args(argv: list[str] | None = None) -> tuple:
    """Parse `[train|score|pick] [--config recipe.yaml] [--overrides]` into that command's dataclasses."""
    command, argv = _split_command(sys.argv[1:] if argv is None else argv)
    parser = _parser(command)
    if "--config" in argv:
        position = argv.index("--config")
        config_path = argv[position + 1]
        argv = argv[:position] + argv[position + 2:]
        with open(config_path) as handle:
            recipe = {k: v for k, v in (yaml.safe_load(handle) or {}).items() if k != "command"}
        known = {f.dest for f in parser._actions}
        unknown = sorted(set(recipe) - known)
        if unknown:
            raise ValueError(f"{config_path}: unknown keys {unknown} for `select {command}`.")
        parser.set_defaults(**recipe)
        for action in parser._actions:  # a recipe value satisfies a required argument
            if action.dest in recipe:
                action.required = False
    return parser.parse_args_into_dataclasses(args=argv)


def _print_help() -> None:
    print(f"usage: hf-medvlm select {{{','.join(COMMANDS)}}} [options]\n")
    print(__doc__)
    for command in COMMANDS:
        print(f"  hf-medvlm select {command} --help")
    print("\nexample:\n  hf-medvlm select train --config recipes/biomed-vital/selection/train.yaml --sweep_w 1,10,100")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parsed = parse_args(argv)
    if isinstance(parsed[0], TrainArguments):
        return run_train(*parsed)
    if isinstance(parsed[0], ScoreArguments):
        return run_score(parsed[0])
    if isinstance(parsed[0], (ExportAnnotationsArguments, ImportAnnotationsArguments)):
        run = export_annotations if isinstance(parsed[0], ExportAnnotationsArguments) else import_annotations
        print(json.dumps(run(parsed[0]), indent=2))
        return 0
    return run_pick(parsed[0])

