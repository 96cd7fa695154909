"""`hf-medvlm generate <method>`: run a data-generation method against an OpenAI-compatible endpoint or a local
transformers model, resumably, and write training-schema rows.

Methods: ``llava-med`` (self-instruct, text-only), ``pubmedvision`` (reformatting), ``biomed-vital`` (generation
with demonstrations), ``rate`` (BioMed-VITAL model-based rating), ``select-demos`` (BioMed-VITAL demonstration
candidates). Replies go to ``<output_dir>/responses.jsonl`` keyed by record id: rerunning the same command after a
crash sends only the requests that have no reply yet.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentDefaultsHelpFormatter, RawDescriptionHelpFormatter

from transformers import HfArgumentParser

from ..generation.pipelines import METHODS, GenerateArguments, chat_backend, run_method, select_demos
from ..outcome import failure_exit_code

EPILOG = """examples:
  hf-medvlm generate llava-med --input figures.jsonl --output_dir out/llava_med \\
      --llm_base_url http://localhost:8000/v1 --llm_model gpt-4
  hf-medvlm generate pubmedvision --input kept.jsonl --output_dir out/pmv --local_model microsoft/llava-med-v1.5-mistral-7b
  hf-medvlm generate biomed-vital --input figures.jsonl --demonstrations demos.jsonl --output_dir out/vital ...
  hf-medvlm generate rate --input out/vital/data/conversations.jsonl --output_dir out/ratings ...
  hf-medvlm generate select-demos --input figures.jsonl --output_dir out/demos --num_clusters 60 --num_samples 120
"""


class _HelpFormatter(ArgumentDefaultsHelpFormatter, RawDescriptionHelpFormatter):
    """Show defaults and keep the example epilog's line breaks."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in METHODS:
        print(f"usage: hf-medvlm generate {{{','.join(METHODS)}}} [options]   (--help after a method)\n\n{EPILOG}")
        return 0 if argv[:1] in ([], ["-h"], ["--help"]) else 2
    method, rest = argv[0], argv[1:]
    from ..llm import ChatEndpointArguments

    parser = HfArgumentParser((GenerateArguments, ChatEndpointArguments), prog=f"hf-medvlm generate {method}",
                              epilog=EPILOG, description=__doc__,
                              formatter_class=_HelpFormatter)
    args, endpoint = parser.parse_args_into_dataclasses(rest)
    if method == "select-demos":
        report = select_demos(args)
    else:
        report = run_method(method, args, chat_backend(args, endpoint), concurrency=endpoint.llm_concurrency)
    print(json.dumps(report, indent=2))
    if method == "select-demos":
        return 0
    return failure_exit_code("generate", report["failed"]["count"], report["failed"]["of"], args.max_failure_rate,
                             "records", details=f"counts in {args.output_dir}/report.json",
                             failed_requests=report["requests"]["failed"])
