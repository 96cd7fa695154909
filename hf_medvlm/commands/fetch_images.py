"""Download PMC Open Access tarballs and extract only the figures a dataset needs (`images/{pair_id}.jpg`, each
verified to decode), in parallel, resumably, with a `failures.jsonl` naming every figure that could not be fetched."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ..data.fetch_images import FetchImagesArguments, fetch_images, read_pair_ids, read_url_records
from ..outcome import check_failure_rate, failure_exit_code, failure_rate_field
from .parser import parse

EPILOG = """example:
  hf-medvlm fetch-images --urls_file llava_med_image_urls.jsonl --output_dir pmc \\
      --pair_ids_file llava_med_instruct_60k_inline_mention.json --num_workers 16 \\
      --mirror_patterns 'https://my-mirror.example/pmc/{path}'
"""


@dataclass
class FetchOutcomeArguments:
    # A few PMC OA tarballs are gone for good (withdrawn articles) and a few figures are missing from theirs; a tenth
    # of the images lost is a network, mirror or URL-list problem, not that.
    max_failure_rate: float = failure_rate_field(
        0.1, "requested images (tarball not downloadable, figure missing from it or undecodable, path refused)")


def main(argv: list[str] | None = None) -> int:
    args, outcome = parse((FetchImagesArguments, FetchOutcomeArguments), argv, prog="hf-medvlm fetch-images",
                          doc=__doc__, epilog=EPILOG)
    check_failure_rate(outcome.max_failure_rate)
    records = read_url_records(args.urls_file, args.limit)
    if args.pair_ids_file:
        wanted = read_pair_ids(args.pair_ids_file)
        records = [r for r in records if r["pair_id"] in wanted]
    report = fetch_images(records, args.output_dir, args)
    print(f"{report.summary()}; failure manifest: {report.manifest}", file=sys.stderr)
    failed = sum(report.failed.values())
    return failure_exit_code("fetch-images", failed, failed + report.done + report.already_present,
                             outcome.max_failure_rate, "images", details=f"reasons in {report.manifest}")
