"""`hf-medvlm prepare <source>`: raw release files -> Hub-ready Parquet folder (+ dataset card), optionally pushed."""

from __future__ import annotations

import argparse
import sys

from transformers import HfArgumentParser

from ..data.prepare import SOURCES, PrepareArguments, prepare
from ..outcome import failure_exit_code

EPILOG = """example:
  hf-medvlm prepare llava_med_instruct --input_path llava_med_instruct_60k_inline_mention.json \\
      --image_root images --config_name 60k_inline_mention --output_dir llava_med_instruct --on_error skip

sources: """ + ", ".join(SOURCES)


def _push(args: PrepareArguments) -> str:
    if not args.hub_repo_id:
        raise ValueError("--push_to_hub needs --hub_repo_id")
    from ..hub import push_dataset_folder

    return push_dataset_folder(args.output_dir, args.hub_repo_id, private=args.hub_private)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print(f"usage: hf-medvlm prepare <source> --input_path RAW --output_dir DIR [options]\n\n{EPILOG}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    source, rest = argv[0], argv[1:]
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {sorted(SOURCES)}")
    parser = HfArgumentParser(PrepareArguments, prog=f"hf-medvlm prepare {source}", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    (args,) = parser.parse_args_into_dataclasses(rest)
    counts = prepare(source, args)
    skipped = sum(counts["skipped"].values())
    code = failure_exit_code("prepare", skipped, skipped + counts["num_rows"], args.max_failure_rate, "records",
                             details=f"skips by reason in {args.output_dir}/build_report.json"
                             + ("; not pushed" if args.push_to_hub else ""))
    if args.push_to_hub and code == 0:
        print(f"pushed to {_push(args)}", file=sys.stderr)
    return code
