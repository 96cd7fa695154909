"""Property-based fuzzing of the LLM reply parsers (issue 16): whatever a model replies, each parser returns a
result or a counted reason, never an exception, and the same reply always parses the same way."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from hf_medvlm.generation.parsing import (
    REFORMAT_KEYS, compile_turn_filters, filter_turn_pairs, parse_reformat_json, parse_score_line,
    parse_user_assistant_turns,
)

SPEAKERS = ["User:", "Assistant:", "USER:", "**User:**", "- Human:", "Question 2:", "Answer:", "GPT :", "> assistant:"]
LINES = st.one_of(st.text(max_size=40), st.builds("{} {}".format, st.sampled_from(SPEAKERS), st.text(max_size=30)))
TRANSCRIPTS = st.lists(LINES, max_size=12).map("\n".join) | st.text(max_size=200)


@given(TRANSCRIPTS)
def test_turn_parser_returns_pairs_and_counted_drops(text):
    result = parse_user_assistant_turns(text)
    assert all(isinstance(q, str) and isinstance(a, str) and q and a for q, a in result.pairs)
    assert all(isinstance(count, int) and count > 0 for count in result.drops.values())
    assert parse_user_assistant_turns(text) == result  # deterministic


@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=6),
       st.dictionaries(st.text(max_size=10), st.one_of(st.lists(st.text(max_size=12), max_size=3), st.text()),
                       max_size=3))
def test_turn_filters_keep_or_count_every_pair(pairs, rules):
    kept, drops = filter_turn_pairs(pairs, compile_turn_filters(rules))
    assert len(kept) + sum(drops.values()) == len(pairs)
    assert all(pair in pairs for pair in kept)


def _reformat_reply(draw) -> str:
    """A reply around a JSON object with the three keys, some renamed, retyped or missing, then roughed up as models
    do: code fences, chatter, smart quotes, single quotes, trailing commas, a missing brace."""
    keys = draw(st.lists(st.sampled_from([*REFORMAT_KEYS, "QA query", "image description", "qa_answer", "other"]),
                         max_size=5))
    values = st.one_of(st.text(max_size=20), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=2))
    text = json.dumps({key: draw(values) for key in keys}, ensure_ascii=draw(st.booleans()))
    for rough in draw(st.lists(st.sampled_from(["fence", "chatter", "smart", "single", "comma", "cut"]), max_size=3)):
        text = {"fence": f"```json\n{text}\n```", "chatter": f"Sure! Here it is:\n{text}\nHope this helps.",
                "smart": text.replace('"', "\u201c", 2), "single": text.replace('"', "'"),
                "comma": text.replace("}", ",}"), "cut": text[: len(text) * 2 // 3]}[rough]
    return text


@given(st.one_of(st.text(max_size=200), st.composite(lambda draw: _reformat_reply(draw))()))
def test_reformat_parser_returns_three_fields_or_a_reason(text):
    parsed = parse_reformat_json(text)
    fields = (parsed.image_description, parsed.qa_query, parsed.qa_answer)
    if parsed.reason:
        assert not any(fields)
    else:
        assert all(isinstance(f, str) and f.strip() == f and f for f in fields)
    assert parse_reformat_json(text) == parsed


@given(st.one_of(st.text(max_size=40), st.lists(st.integers(-3, 14), max_size=6).map(lambda xs: " ".join(map(str, xs)))),
       st.integers(0, 6))
def test_score_line_is_one_score_per_pair_or_a_reason(text, num_pairs):
    parsed = parse_score_line(text, num_pairs)
    if parsed.scores is None:
        assert parsed.reason in ("empty_reply", "no_score_line", "score_out_of_range", "wrong_score_count")
    else:
        assert parsed.reason == "" and len(parsed.scores) == num_pairs and all(0 <= s <= 10 for s in parsed.scores)
