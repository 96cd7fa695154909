"""Answers from an OpenAI-compatible chat endpoint (vLLM, TGI, SGLang) instead of a local `generate`.

Each question is one chat request shaped like the local prompt (images first as lossless base64 PNG data URLs, then the
text; greedy unless sampling is asked for). Replies land in `answers.endpoint.jsonl` as they arrive, so a killed run
resends nothing it received, then go into `answers.jsonl` as local answers do. docs/evaluation.md ("Through a serving
engine") has the `vllm serve` command and the details.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..llm import ChatRequest, OpenAIChatBackend, image_to_data_url, read_results, run_requests
from .benchmark import append_answers

__all__ = ["generate_with_endpoint"]


class _Jobs:
    """`(id, ChatRequest)` pairs built one at a time (each holds its images inline), with a length for the progress
    bar; `run_requests` keeps at most twice the concurrency of them alive."""

    def __init__(self, questions, args):
        self.questions, self.args = questions, args

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self):
        temperature = self.args.temperature if self.args.do_sample else 0.0
        for q in self.questions:
            parts = [{"type": "image_url", "image_url": {"url": image_to_data_url(i)}} for i in q.load_images()]
            messages = [{"role": "user", "content": [*parts, {"type": "text", "text": q.prompt}]}]
            yield q.id, ChatRequest(messages=messages, max_tokens=self.args.max_new_tokens, temperature=temperature)


def generate_with_endpoint(args, questions, answers_path: Path) -> None:
    """Answer `questions` (those not yet in `answers_path`) through `args.endpoint_base_url`; append them there.

    Raises `RuntimeError` when some requests failed for good: the answers received are kept, a rerun retries the rest.
    """
    raw_path = answers_path.with_name("answers.endpoint.jsonl")
    backend = OpenAIChatBackend(base_url=args.endpoint_base_url, model=args.model_name_or_path,
                                api_key=os.environ.get(args.endpoint_api_key_env) or None,
                                cache_dir=args.endpoint_cache_dir)
    try:
        report = run_requests(_Jobs(questions, args), backend, output_path=raw_path,
                              concurrency=args.endpoint_concurrency, desc=f"answering ({backend.base_url})")
    finally:
        backend.close()
    replies = read_results(raw_path)
    append_answers(answers_path, [
        dict(question_id=q.id, prompt=q.prompt, text=str(replies[q.id]["text"]).strip(),
             model_id=args.model_name_or_path)
        for q in questions if q.id in replies
    ])
    if report.failed:
        first = report.failures[0]
        raise RuntimeError(f"{report.failed} of {report.total} requests to {backend.base_url} failed (first: "
                           f"{first['id']}: {first['error']}); rerun to retry them, the {report.done} answers "
                           "received are kept")
