"""Generate answers on a medical VQA benchmark, score them under named protocols (`llava_med`, `strict`, multiple
choice, LLM-judged chat / win rate) and write answers.jsonl, results.json and model_index.json to `output_dir`.
`accelerate launch -m hf_medvlm eval ...` shards the questions over processes; rerunning resumes."""

from __future__ import annotations

from ..eval.evaluation import EvalArguments, run_evaluation, validate_args
from ..llm.configuration import ChatEndpointArguments
from .parser import parse

EPILOG = """examples:
  hf-medvlm eval --config recipes/tiny/eval/demo.yaml --output_dir /tmp/demo-eval
  hf-medvlm eval --config recipes/llava-med-v1.5-mistral-7b/eval/vqa_rad.yaml --max_samples 20
  accelerate launch --num_processes 8 -m hf_medvlm eval --config recipes/llava-med-v1.5-mistral-7b/eval/slake.yaml
  hf-medvlm eval --config recipes/llava-med-v1.5-mistral-7b/eval/vqa_rad.yaml --answers_file answers.jsonl
  hf-medvlm eval --config recipes/llava-med-v1.5-mistral-7b/eval/vqa_rad.yaml --model_name_or_path llava-med-v1.5 \
      --endpoint_base_url http://localhost:8000/v1   # answers from vLLM/TGI serving the model
"""


def parse_args(argv: list[str] | None = None) -> tuple[EvalArguments, ChatEndpointArguments]:
    """`--config recipe.yaml` plus overrides -> (EvalArguments, ChatEndpointArguments); the endpoint (`llm_*` keys)
    is the LLM judge of the chat and win-rate tasks."""
    args, endpoint = parse((EvalArguments, ChatEndpointArguments), argv, prog="hf-medvlm eval", doc=__doc__,
                           epilog=EPILOG)
    validate_args(args)
    return args, endpoint


def main(argv: list[str] | None = None) -> int:
    return run_evaluation(*parse_args(argv))
