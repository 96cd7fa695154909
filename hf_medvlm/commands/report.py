"""The papers' tables from your `results.json` files, published numbers and sources beside yours. Writes report.md
(every table, the inputs and the sources), one CSV per table (vqa, multiple_choice, qa50, win_rate) and report.png.
A results.json is mapped to a benchmark by its `task` and by the first of `benchmark`, `dataset` and
`config.dataset_type` that names one (docs/evaluation.md); files that map to nothing are listed and left out."""

from __future__ import annotations

from ..eval.report import ReportArguments, run_report
from .parser import parse

EPILOG = """examples:
  hf-medvlm report --results runs/llava-med-v1.5-mistral-7b/eval --output_dir runs/report
  hf-medvlm report --results 'runs/**/results.json' runs/qa50/results.json --output_dir runs/report --chart false
"""


def main(argv: list[str] | None = None) -> int:
    (args,) = parse((ReportArguments,), argv, prog="hf-medvlm report", doc=__doc__, epilog=EPILOG)
    return run_report(args)
