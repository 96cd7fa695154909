"""Property-based fuzzing of the judge's reply parsing and of the answer matchers (issue 16): any model output is
scored without an exception, every score lies in its documented range, and the same input scores the same."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hf_medvlm.eval import metrics
from hf_medvlm.eval.judge import combine_orders, parse_score_pair, parse_verdict

# Model outputs: free text, plus the words and marks the matchers look for.
WORDS = ["yes", "No", "no.", "Yes,", "the", "a", "an", "one", "2", "3,000", "1.5", "left lung", "(A)", "B.", "is C",
         "I think", "答案是D", "**E**", "'F'", "#G", "liver", "CT", "don't", "\u00e9", "\uff21", "\u2460", "  ", ",", "."]
ANSWERS = st.one_of(st.text(max_size=40), st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join))


@given(st.one_of(st.text(max_size=30), st.builds("{} {}\n{}".format, st.floats(allow_nan=True), st.integers(-5, 15),
                                                 st.text(max_size=10))))
def test_judge_score_pair_is_two_scores_in_1_to_10_or_a_reason(text):
    pair, reason = parse_score_pair(text)
    if pair is None:
        assert reason in ("no_scores", "out_of_range")
    else:
        assert reason is None and all(1 <= score <= 10 and math.isfinite(score) for score in pair)
    assert parse_score_pair(text) == (pair, reason)


@given(st.one_of(st.text(max_size=30), st.lists(st.sampled_from(["[[A]]", "[[B]]", "[[C]]", "[[D]]", "[A]", "x"]),
                                                max_size=4).map(" ".join)))
def test_judge_verdict_is_one_letter_or_none(text):
    verdict = parse_verdict(text)
    assert verdict in ("A", "B", "C", None)
    assert combine_orders(verdict, parse_verdict(text[::-1])) in ("win", "loss", "tie", "inconsistent", None)


def _in_unit_interval(scores: dict) -> bool:
    return all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in scores.values())


@pytest.mark.parametrize("protocol", metrics.PROTOCOLS)
@pytest.mark.parametrize("answer_type", metrics.ANSWER_TYPES)
@given(prediction=ANSWERS, reference=ANSWERS)
def test_vqa_item_scores_lie_in_0_1_and_are_deterministic(protocol, answer_type, prediction, reference):
    scores = metrics.score_vqa_item(prediction, reference, answer_type, protocol)
    assert _in_unit_interval(scores), scores
    assert metrics.score_vqa_item(prediction, reference, answer_type, protocol) == scores


@given(st.one_of(st.text(max_size=40), ANSWERS))
def test_normalisers_return_text(text):
    for normalise in (metrics.normalize_llava_med, metrics.normalize_strict):
        assert isinstance(normalise(text), str) and normalise(text) == normalise(text)


@pytest.mark.parametrize("protocol", metrics.PROTOCOLS)
@given(st.lists(st.tuples(ANSWERS, ANSWERS.filter(str.strip), st.sampled_from(metrics.ANSWER_TYPES)), max_size=5))
def test_aggregate_vqa_metrics_are_means_in_0_1_or_none(protocol, items):
    predictions, references, kinds = (list(column) for column in zip(*items)) if items else ([], [], [])
    result = metrics.compute_vqa_metrics(predictions, references, kinds, protocol)
    means = {k: v for k, v in result.items() if k.startswith(("open_", "closed_"))}
    assert all(v is None or 0.0 <= v <= 1.0 for v in means.values()), means
    assert result["num_closed"] + result["num_open"] == len(items)


OPTIONS = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(WORDS)), min_size=1,
                   max_size=len(metrics.OPTION_LETTERS))


@given(ANSWERS, OPTIONS)
def test_multiple_choice_matching_picks_a_letter_with_its_rule(text, options):
    letter, rule = metrics.match_choice(text, options)
    if rule == "letter":  # the original's regex, verbatim: any of a-n / A-N standing alone
        assert letter in "abcdefghijklmnABCDEFGHIJKLMN"
    else:
        assert rule in ("option_text", "closest") and letter in metrics.OPTION_LETTERS[: len(options)]
    assert metrics.match_choice(text, options) == (letter, rule)


@given(st.lists(st.tuples(ANSWERS, OPTIONS, st.sampled_from([None, *metrics.OPTION_LETTERS])), max_size=5))
def test_multiple_choice_accuracy_lies_in_0_1(items):
    predictions, options, golds = (list(column) for column in zip(*items)) if items else ([], [], [])
    result = metrics.compute_mc_metrics(predictions, options, golds)
    assert result["accuracy"] is None or 0.0 <= result["accuracy"] <= 1.0
    assert sum(result["decided_by"].values()) == len(items)


@given(OPTIONS, st.one_of(st.none(), st.text(max_size=12)), st.one_of(st.none(), st.text(max_size=3)))
def test_gold_letter_is_a_letter_none_or_a_named_error(options, answer, label):
    try:
        letter = metrics.gold_letter(options, answer, label)
    except ValueError as err:
        assert "answer" in str(err)
        return
    assert letter is None or letter in metrics.OPTION_LETTERS[: len(options)]
