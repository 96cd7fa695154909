"""`hf-medvlm select train|score|pick`: the BioMed-VITAL selection stage (seed 002 §3.2, §4.2).

    hf-medvlm select train --config recipes/biomed-vital/selection/train.yaml [--sweep_w 1,10,100]
    hf-medvlm select score --model_name_or_path runs/selector --dataset_name data/generated --output_dir runs/scored
    hf-medvlm select pick --dataset_name runs/scored --percents 10,50,80 --strategy global --output_dir runs/selected

A recipe names its subcommand with a top-level `command:` key; `parse_args` returns the dataclasses of that command.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

import yaml
from transformers import HfArgumentParser

from .training import SelectorTrainingArguments

__all__ = ["TrainArguments", "ScoreArguments", "PickArguments", "parse_args", "main"]

logger = logging.getLogger(__name__)


@dataclass
class TrainArguments:
    model_name_or_path: str = field(metadata={
        "help": "A CLIP-like encoder loadable with AutoModel (e.g. openai/clip-vit-base-patch16) to start a new "
                "selector, or a saved MedSelector to continue training. Its processor must load with AutoProcessor."})
    human_pairs: str | None = field(default=None, metadata={
        "help": "Clinician preference pairs (pair schema): .json/.jsonl/.parquet file, dataset folder or Hub repo."})
    human_test_pairs: str | None = field(default=None, metadata={
        "help": "Held-out clinician pairs for evaluation; default: `human_test_fraction` of `human_pairs`."})
    human_test_fraction: float = field(default=0.2, metadata={
        "help": "Fraction of human pairs held out for evaluation when `human_test_pairs` is not given."})
    model_pairs: str | None = field(default=None, metadata={"help": "Ready-made model preference pairs."})
    model_ratings: str | None = field(default=None, metadata={
        "help": "Model-rated samples (training schema + `rating` 0-10 or null) to turn into model pairs."})
    dataset_config: str | None = field(default=None, metadata={"help": "Config name for folder/Hub inputs."})
    num_model_pairs: int | None = field(default=None, metadata={
        "help": "Model pairs drawn from `model_ratings` (default: one per usable rated sample)."})
    rating_min_gap: float = field(default=1.0, metadata={"help": "Minimum rating difference within a model pair."})
    loss_type: str = field(default="paper", metadata={"help": "paper | bradley_terry | code_hinge."})
    head_hidden_sizes: str = field(default="512,512,512", metadata={"help": "Comma-separated MLP hidden sizes."})
    include_caption: bool = field(default=True, metadata={"help": "Encode the caption/mention before the QA text."})
    qa_rounds: int = field(default=1, metadata={
        "help": "QA rounds read per sample (1 = first, as the code; 0 = all)."})
    sweep_w: str | None = field(default=None, metadata={
        "help": "Comma-separated mixing weights w: trains one selector per value and prints a Table-1-style "
                "comparison."})
    on_error: str = field(default="skip", metadata={"help": "raise | skip (and count) bad pairs or rated rows."})


@dataclass
class ScoreArguments:
    model_name_or_path: str = field(metadata={"help": "A trained MedSelector folder or Hub repo."})
    dataset_name: str = field(metadata={"help": "Dataset (training schema): folder, Hub repo or .parquet/.jsonl."})
    output_dir: str = field(metadata={"help": "Where to write the scored dataset (a dataset folder)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Config of the input dataset."})
    dataset_split: str = field(default="train", metadata={"help": "Split of the input dataset."})
    output_config: str = field(default="scored", metadata={"help": "Config name of the scored dataset."})
    score_column: str = field(default="selection_score", metadata={"help": "Column the scores are written to."})
    save_features: bool = field(default=False, metadata={
        "help": "Also write the selector features (column `selection_features`), needed by "
                "`pick --strategy clusters`."})
    batch_size: int = field(default=32, metadata={"help": "Samples per forward pass."})
    max_text_length: int = field(default=256, metadata={"help": "Truncate encoded texts to this many tokens."})
    device: str = field(default="cpu", metadata={"help": "torch device, e.g. cpu or cuda."})


@dataclass
class PickArguments:
    dataset_name: str = field(metadata={"help": "Scored dataset (output of `select score`)."})
    output_dir: str = field(metadata={"help": "Dataset folder receiving one config per percentage (`top_10`, ...)."})
    dataset_config: str | None = field(default="scored", metadata={"help": "Config of the scored dataset."})
    dataset_split: str = field(default="train", metadata={"help": "Split of the scored dataset."})
    score_column: str = field(default="selection_score", metadata={"help": "Column holding the scores."})
    percents: str = field(default="10,50,80", metadata={"help": "Comma-separated top-K percentages to write."})
    strategy: str = field(default="global", metadata={
        "help": "global = top K percent over all samples (the released code); clusters = equal share of "
                "top-ranked samples from each K-means cluster (the paper text)."})
    num_clusters: int = field(default=10, metadata={"help": "K-means clusters for strategy=clusters."})
    features_column: str = field(default="selection_features", metadata={"help": "Features for clustering."})
    seed: int = field(default=0, metadata={"help": "K-means seed."})
    label_column: str | None = field(default=None, metadata={
        "help": "Labelled column (0/1, or a rating with `label_threshold`) for the Precision@K / F1@K plot."})
    label_threshold: float | None = field(default=None, metadata={
        "help": "A sample is good when label_column >= this (default: label_column is already 0/1)."})
    plot_path: str | None = field(default=None, metadata={"help": "PNG path of the curves (default output_dir)."})


COMMANDS = {
    "train": (TrainArguments, SelectorTrainingArguments),
    "score": (ScoreArguments,),
    "pick": (PickArguments,),
}
EPILOG = """examples:
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
    from . import commands  # heavy imports only once arguments are valid

    if isinstance(parsed[0], TrainArguments):
        return commands.run_train(*parsed)
    if isinstance(parsed[0], ScoreArguments):
        return commands.run_score(parsed[0])
    return commands.run_pick(parsed[0])


if __name__ == "__main__":
    sys.exit(main())
