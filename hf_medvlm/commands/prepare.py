"""Convert a source's raw release files (LLaVA-Med, PubMedVision, BioMed-VITAL, VQA-RAD, SLAKE, PathVQA, PMC-VQA) into
a Hub-ready Parquet folder with a dataset card, optionally pushed. The same code runs behind every
`dataset_scripts/<source>.py`."""

from __future__ import annotations

import sys

from ..data.prepare import SOURCES, PrepareArguments, prepare
from ..hub import push_dataset_folder, require_hub_access
from ..outcome import failure_exit_code
from .parser import SubCommand, parse_subcommand

EPILOG = """example:
  hf-medvlm prepare llava_med_instruct --input_path llava_med_instruct_60k_inline_mention.json \\
      --image_root images --config_name 60k_inline_mention --output_dir llava_med_instruct --on_error skip
"""

SUBCOMMANDS = {name: SubCommand((PrepareArguments,), spec.summary) for name, spec in SOURCES.items()}


def main(argv: list[str] | None = None) -> int:
    source, parsed = parse_subcommand(SUBCOMMANDS, argv, prog="hf-medvlm prepare", doc=__doc__, epilog=EPILOG)
    if source is None:
        return 0
    (args,) = parsed
    if args.push_to_hub and not args.hub_repo_id:
        raise ValueError("--push_to_hub needs --hub_repo_id")
    if args.push_to_hub:
        require_hub_access(f"push {args.hub_repo_id}")
    counts = prepare(source, args)
    skipped = sum(counts["skipped"].values())
    code = failure_exit_code("prepare", skipped, skipped + counts["num_rows"], args.max_failure_rate, "records",
                             details=f"skips by reason in {args.output_dir}/build_report.json"
                             + ("; not pushed" if args.push_to_hub else ""))
    if args.push_to_hub and code == 0:
        url = push_dataset_folder(args.output_dir, args.hub_repo_id, private=args.hub_private)
        print(f"pushed to {url}", file=sys.stderr)
    return code
