"""`hf-medvlm eval`: generate answers on a medical VQA benchmark, score them under named protocols, write results.

    hf-medvlm eval --config recipes/llava-med-v1.5-mistral-7b/eval/vqa_rad.yaml
    accelerate launch -m hf_medvlm eval --config recipes/llava-med-v1.5-mistral-7b/eval/slake.yaml   # sharded
    hf-medvlm eval --config ... --answers_file answers.jsonl   # score an existing answers file
"""

from __future__ import annotations

import argparse

from trl import TrlParser

from ..eval.evaluation import EvalArguments, run_evaluation, validate_args
from ..llm.configuration import ChatEndpointArguments

EPILOG = """example:
  hf-medvlm eval --config recipes/tiny/eval/demo.yaml --output_dir /tmp/demo-eval
  hf-medvlm eval --config recipes/llava-med-v1.5-mistral-7b/eval/vqa_rad.yaml --max_samples 20
  hf-medvlm eval --config recipes/llava-med-v1.5-mistral-7b/eval/vqa_rad.yaml --model_name_or_path llava-med-v1.5 \
      --endpoint_base_url http://localhost:8000/v1   # answers from vLLM/TGI serving the model
"""


def parse_args(argv: list[str] | None = None):
    """Parse `--config recipe.yaml` (defaults) and overrides into `(EvalArguments, ChatEndpointArguments)`.

    The endpoint arguments (`llm_base_url`, `llm_model`, ...) configure the LLM judge of the chat and win-rate tasks.
    """
    parser = TrlParser((EvalArguments, ChatEndpointArguments), epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Generate and score answers on a medical VQA benchmark.")
    args, endpoint = parser.parse_args_and_config(args=argv)
    validate_args(args)
    return args, endpoint


def main(argv: list[str] | None = None) -> int:
    return run_evaluation(*parse_args(argv))
