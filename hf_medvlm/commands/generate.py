"""`hf-medvlm generate <method>`: run a data-generation method against an OpenAI-compatible endpoint or a local
transformers model, resumably, and write training-schema rows.

Methods: ``llava-med`` (self-instruct, text-only), ``pubmedvision`` (reformatting), ``image-labels`` (labels for
PubMedVision's image classifier), ``biomed-vital`` (generation with demonstrations), ``biomed-vital-candidates`` (two
answers per question for clinicians), ``rate`` (BioMed-VITAL model-based rating), ``select-demos`` (BioMed-VITAL
demonstration candidates). Replies go to ``<output_dir>/responses.jsonl`` keyed by record id: rerunning the same
command after a crash sends only the requests that have no reply yet. ``--config`` reads a recipe
(recipes/*/generate/*.yaml set the papers' generator models); command-line flags override it.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentDefaultsHelpFormatter, RawDescriptionHelpFormatter

from trl import TrlParser

from ..generation.pipelines import METHODS, GenerateArguments, chat_backend, run_method, select_demos

EPILOG = """examples:
  hf-medvlm generate pubmedvision --config recipes/pubmedvision/generate/reformat.yaml --input kept.jsonl
  hf-medvlm generate llava-med --input figures.jsonl --output_dir out/llava_med \\
      --llm_base_url http://localhost:8000/v1 --llm_model gpt-4
  hf-medvlm generate pubmedvision --input kept.jsonl --output_dir out/pmv --local_model microsoft/llava-med-v1.5-mistral-7b
  hf-medvlm generate biomed-vital --input figures.jsonl --demonstrations demos.jsonl --output_dir out/vital ...
  hf-medvlm generate rate --input out/vital/data/conversations.jsonl --output_dir out/ratings ...
  hf-medvlm generate image-labels --input figures.jsonl --output_dir out/labels --llm_model gpt-4-turbo-2024-04-09
  hf-medvlm generate biomed-vital-candidates --input out/demos/demonstration_candidates.jsonl --output_dir out/cand ...
  hf-medvlm generate select-demos --input figures.jsonl --output_dir out/demos --num_clusters 60 --num_samples 120
"""


class _HelpFormatter(ArgumentDefaultsHelpFormatter, RawDescriptionHelpFormatter):
    """Show defaults and keep the example epilog's line breaks."""


def parse_args(method: str, argv: list[str]):
    """`[--config recipe.yaml] [--overrides]` of one method into `(GenerateArguments, ChatEndpointArguments)`."""
    from ..llm import ChatEndpointArguments

    parser = TrlParser((GenerateArguments, ChatEndpointArguments), prog=f"hf-medvlm generate {method}",
                       epilog=EPILOG, description=__doc__, formatter_class=_HelpFormatter)
    return parser.parse_args_and_config(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in METHODS:
        print(f"usage: hf-medvlm generate {{{','.join(METHODS)}}} [options]   (--help after a method)\n\n{EPILOG}")
        return 0 if argv[:1] in ([], ["-h"], ["--help"]) else 2
    method = argv[0]
    args, endpoint = parse_args(method, argv[1:])
    if method == "select-demos":
        report = select_demos(args)
    else:
        report = run_method(method, args, chat_backend(args, endpoint), concurrency=endpoint.llm_concurrency)
    print(json.dumps(report, indent=2))
    failed = report.get("requests", {}).get("failed", 0)
    return 1 if failed else 0
