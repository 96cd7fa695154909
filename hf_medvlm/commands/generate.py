"""Run a data-generation method against an OpenAI-compatible endpoint (`--llm_base_url`) or a local transformers model
(`--local_model`), resumably, and write training-schema rows. Replies go to `<output_dir>/responses.jsonl` keyed by
record id: rerunning the same command after a crash sends only the requests that have no reply yet. The recipes under
recipes/*/generate/ name the method (`command:`) and the paper's generator model (`llm_model`)."""

from __future__ import annotations

import json

from ..generation.pipelines import GenerateArguments, chat_backend, run_method, select_demos
from ..llm.configuration import ChatEndpointArguments
from ..outcome import failure_exit_code
from .parser import SubCommand, parse_subcommand

EPILOG = """examples:
  hf-medvlm generate --config recipes/pubmedvision/generate/reformat.yaml --input kept.jsonl
  hf-medvlm generate llava-med --input figures.jsonl --output_dir out/llava_med \\
      --llm_base_url http://localhost:8000/v1 --llm_model gpt-4
  hf-medvlm generate pubmedvision --input kept.jsonl --output_dir out/pmv --local_model microsoft/llava-med-v1.5-mistral-7b
  hf-medvlm generate image-labels --input figures.jsonl --output_dir out/labels --llm_model gpt-4-turbo-2024-04-09
  hf-medvlm generate biomed-vital --input figures.jsonl --demonstrations demos.jsonl --output_dir out/vital ...
  hf-medvlm generate biomed-vital-candidates --input out/demos/demonstration_candidates.jsonl --output_dir out/cand ...
  hf-medvlm generate rate --input out/vital/data/conversations.jsonl --output_dir out/ratings ...
  hf-medvlm generate select-demos --input figures.jsonl --output_dir out/demos --num_clusters 60 --num_samples 120
"""

_ARGUMENTS = (GenerateArguments, ChatEndpointArguments)
SUBCOMMANDS = {
    "llava-med": SubCommand(_ARGUMENTS, "LLaVA-Med self-instruct conversations from captions and mentions (text-only)"),
    "pubmedvision": SubCommand(_ARGUMENTS, "PubMedVision reformatting of figure records into VQA with a multimodal LLM"),
    "image-labels": SubCommand(_ARGUMENTS, "PubMedVision medical/non-medical labels, the image classifier's training set"),
    "biomed-vital": SubCommand(_ARGUMENTS, "BioMed-VITAL generation with clinician-selected demonstrations"),
    "biomed-vital-candidates": SubCommand(_ARGUMENTS, "BioMed-VITAL questions with two answers each, for clinicians"),
    "rate": SubCommand(_ARGUMENTS, "BioMed-VITAL model-based rating of generated conversations"),
    "select-demos": SubCommand(_ARGUMENTS, "BioMed-VITAL demonstration candidates (K-means over caption embeddings)"),
}


def parse_args(argv: list[str] | None = None) -> tuple[str | None, tuple]:
    """`[<method>] [--config recipe.yaml] [--overrides]` -> (method, (GenerateArguments, ChatEndpointArguments))."""
    return parse_subcommand(SUBCOMMANDS, argv, prog="hf-medvlm generate", doc=__doc__, epilog=EPILOG)


def main(argv: list[str] | None = None) -> int:
    method, parsed = parse_args(argv)
    if method is None:
        return 0
    args, endpoint = parsed
    if method == "select-demos":
        print(json.dumps(select_demos(args), indent=2))
        return 0
    report = run_method(method, args, chat_backend(args, endpoint), concurrency=endpoint.llm_concurrency)
    print(json.dumps(report, indent=2))
    return failure_exit_code("generate", report["failed"]["count"], report["failed"]["of"], args.max_failure_rate,
                             "records", details=f"counts in {args.output_dir}/report.json",
                             failed_requests=report["requests"]["failed"])
