"""LLaVA-Med self-instruct ("blind"): a text LLM turns a caption + inline mentions into a multi-turn conversation
(Li et al., 2023, Appendix A.2 Figures 4-5), then turns that reveal the text source, refusals and keyword hits are
dropped and counted by reason."""

from __future__ import annotations

from ..llm import ChatRequest
from .parsing import compile_turn_filters
from .prompts import load_prompt_file
from .records import conversation_rows, example_messages, figure_context

__all__ = ["self_instruct_jobs", "self_instruct_rows"]


def self_instruct_jobs(records, *, prompt_file="llava_med_self_instruct", with_mentions=True, temperature=0.0,
                       max_tokens=1024, model=None):
    """Figure 4 layout: system message, few-shot (context -> response) pairs, then the query context."""
    prompt = load_prompt_file(prompt_file, ("system", "few_shot"))
    few_shot = [{"role": "system", "content": prompt["system"]}, *example_messages(prompt["few_shot"])]
    for record in records:
        messages = [*few_shot, {"role": "user", "content": figure_context(record, with_mentions)}]
        yield record.id, ChatRequest(messages=messages, model=model, temperature=temperature, max_tokens=max_tokens)


def self_instruct_rows(records, results: dict, *, turn_filters="llava_med_turn_filters"):
    """Parse and post-filter every reply: ({"conversations": rows}, stats), drops counted by reason."""
    filters = compile_turn_filters(load_prompt_file(turn_filters))
    return conversation_rows(records, results, source="llava_med_self_instruct", filters=filters,
                             no_turns="no_turns_left")
