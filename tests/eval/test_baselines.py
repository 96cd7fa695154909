"""Baselines of `hf_medvlm.eval.baselines`: the majority answer, changed answers, the grounding verdict, the table."""

from __future__ import annotations

from hf_medvlm.eval.baselines import changed_answers, comparison_table, grounding_verdict, majority_answers
from hf_medvlm.eval.benchmark import Question, score_answers


def _questions():
    rows = [("a", "yes", "closed"), ("b", "no", "closed"), ("c", "yes", "closed"), ("d", "ct", "open"),
            ("e", "mri", "open"), ("f", "ct", "open")]
    return [Question(id=i, prompt="?", answer=a, answer_type=t) for i, a, t in rows]


def test_majority_answers_are_the_commonest_gold_answer_per_answer_type():
    answers = majority_answers(_questions())
    assert {k: v["text"] for k, v in answers.items()} == {"a": "yes", "b": "yes", "c": "yes", "d": "ct", "e": "ct",
                                                          "f": "ct"}
    scores = score_answers(_questions(), answers, "vqa", ["strict"])["strict"]
    assert round(scores["closed_accuracy"], 1) == 66.7 and round(scores["open_exact_match"], 1) == 66.7


def test_changed_answers_counts_shared_ids_only():
    a = {"1": {"text": "yes"}, "2": {"text": "no"}, "3": {"text": "x"}}
    b = {"1": {"text": "yes"}, "2": {"text": "yes"}}
    assert changed_answers(a, b) == 1


def test_grounding_needs_a_margin_and_changed_answers():
    matched = {"strict": {"closed_accuracy": 70.0, "open_f1": 20.0}}
    swapped = {"strict": {"closed_accuracy": 50.0, "open_f1": 20.0}}
    grounded, evidence = grounding_verdict(matched, swapped, changed=5, total=42)
    assert grounded and "5 of 42 answers change" in evidence and "+20.0 points (closed accuracy (strict))" in evidence
    assert not grounding_verdict(matched, swapped, changed=0, total=42)[0]  # identical answers cannot differ in score
    assert not grounding_verdict(matched, {"strict": {"closed_accuracy": 65.0, "open_f1": 20.0}}, 5, 42)[0]


def test_comparison_table_has_one_row_per_headline_metric_and_a_column_per_run():
    table = comparison_table({"majority": {"llava_med": {"closed_accuracy": 50.0}}, "trained": {}})
    lines = table.splitlines()
    assert lines[0].split()[-2:] == ["majority", "trained"] and len(lines) == 5
    assert lines[1].split()[-2:] == ["50.0", "n/a"]
