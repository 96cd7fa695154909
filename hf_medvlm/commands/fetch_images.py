"""Download PMC Open Access tarballs and extract only the figures a dataset needs (`images/{pair_id}.jpg`, each
verified to decode), in parallel, resumably, with a `failures.jsonl` naming every figure that could not be fetched."""

from __future__ import annotations

import sys

from ..data.fetch_images import FetchImagesArguments, fetch_images, read_pair_ids, read_url_records
from .parser import parse

EPILOG = """example:
  hf-medvlm fetch-images --urls_file llava_med_image_urls.jsonl --output_dir pmc \\
      --pair_ids_file llava_med_instruct_60k_inline_mention.json --num_workers 16 \\
      --mirror_patterns 'https://my-mirror.example/pmc/{path}'
"""


def main(argv: list[str] | None = None) -> int:
    (args,) = parse((FetchImagesArguments,), argv, prog="hf-medvlm fetch-images", doc=__doc__, epilog=EPILOG)
    records = read_url_records(args.urls_file, args.limit)
    if args.pair_ids_file:
        wanted = read_pair_ids(args.pair_ids_file)
        records = [r for r in records if r["pair_id"] in wanted]
    report = fetch_images(records, args.output_dir, args)
    print(f"{report.summary()}; failure manifest: {report.manifest}", file=sys.stderr)
    return 1 if report.failed and not report.done and not report.already_present else 0
