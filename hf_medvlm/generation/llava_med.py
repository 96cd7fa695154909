"""LLaVA-Med self-instruct ("blind"): a text LLM turns a caption + inline mentions into a multi-turn conversation
(Li et al., 2023, Appendix A.2 Figures 4-5), then turns that reveal the text source, refusals and keyword hits are
dropped and counted by reason."""

from __future__ import annotations

from collections import Counter

from ..llm import ChatRequest
from .parsing import compile_turn_filters, filter_turn_pairs, parse_user_assistant_turns
from .prompts import load_prompt_file
from .records import FigureRecord, figure_context, replies, training_row

__all__ = ["build_self_instruct_messages", "self_instruct_jobs", "self_instruct_rows"]


def build_self_instruct_messages(record: FigureRecord, prompt: dict, with_mentions: bool = True) -> list[dict]:
    """Figure 4 layout: system message, few-shot (context -> response) pairs, then the query context."""
    messages = [{"role": "system", "content": prompt["system"]}]
    for example in prompt["few_shot"]:
        messages.append({"role": "user", "content": example["context"]})
        messages.append({"role": "assistant", "content": example["response"]})
    messages.append({"role": "user", "content": figure_context(record, with_mentions)})
    return messages


def self_instruct_jobs(records, *, prompt_file="llava_med_self_instruct", with_mentions=True, temperature=0.0,
                       max_tokens=1024, model=None):
    prompt = load_prompt_file(prompt_file, ("system", "few_shot"))
    for record in records:
        messages = build_self_instruct_messages(record, prompt, with_mentions)
        yield record.id, ChatRequest(messages=messages, model=model, temperature=temperature, max_tokens=max_tokens)


def self_instruct_rows(records, results: dict, *, turn_filters="llava_med_turn_filters", min_pairs: int = 1):
    """Parse and post-filter every reply; returns (rows, stats) with drops counted by reason."""
    filters = compile_turn_filters(load_prompt_file(turn_filters))
    records_by_reason, turns_by_reason, rows = Counter(), Counter(), []
    for record, text in replies(records, results, records_by_reason):
        parsed = parse_user_assistant_turns(text)
        kept, dropped = filter_turn_pairs(parsed.pairs, filters)
        turns_by_reason.update(parsed.drops)
        turns_by_reason.update(dropped)
        if len(kept) < min_pairs:
            records_by_reason["no_turns_left"] += 1
            continue
        # "Blind" generation: the conversation is about the image, which the trainer shows once.
        rows.append(training_row(record, kept, row_id=record.id, source="llava_med_self_instruct",
                                 n_images=min(1, len(record.images))))
    stats = {"records_in": len(records), "rows_out": len(rows), "dropped_records": dict(records_by_reason),
             "dropped_turns": dict(turns_by_reason)}
    return rows, stats
