"""What a score has to beat: the constant (majority) answer on the same questions, and an image-swap control that
tells whether a model's answers depend on the image at all.

Scores are the percentages of `results.json` (`scores[protocol][metric]`).
"""

from __future__ import annotations

from collections import Counter

__all__ = ["HEADLINE_METRICS", "majority_answers", "changed_answers", "comparison_table", "grounding_verdict"]

# (protocol, metric, label): the numbers the demo and docs compare.
HEADLINE_METRICS = (
    ("llava_med", "closed_accuracy", "closed accuracy (llava_med)"),
    ("llava_med", "open_recall", "open recall (llava_med)"),
    ("strict", "closed_accuracy", "closed accuracy (strict)"),
    ("strict", "open_f1", "open token F1 (strict)"),
)


def majority_answers(questions) -> dict[str, dict]:
    """Answer every question with the most frequent gold answer of its answer type (closed: e.g. "yes"; open: the
    commonest open answer): the best score a model that ignores both image and question can reach."""
    by_type: dict[str, Counter] = {}
    for q in questions:
        by_type.setdefault(q.answer_type, Counter())[q.answer] += 1
    # Ties go to the answer seen first, so the baseline is the same on every run.
    constant = {kind: counts.most_common(1)[0][0] for kind, counts in by_type.items()}
    return {q.id: {"question_id": q.id, "text": constant[q.answer_type]} for q in questions}


def changed_answers(answers: dict[str, dict], other: dict[str, dict]) -> int:
    """How many questions got a different answer text in `other` (same ids)."""
    return sum(str(answers[k]["text"]) != str(other[k]["text"]) for k in answers if k in other)


def _value(scores: dict, protocol: str, metric: str) -> str:
    value = scores.get(protocol, {}).get(metric)
    return "n/a" if value is None else f"{value:.1f}"


def comparison_table(columns: dict[str, dict]) -> str:
    """A plain-text table: one row per headline metric, one column per `{name: scores}`."""
    width = max(len(label) for *_, label in HEADLINE_METRICS)
    names = list(columns)
    lines = [f"{'metric (%)'.ljust(width)}  " + "  ".join(f"{n:>{max(9, len(n))}}" for n in names)]
    for protocol, metric, label in HEADLINE_METRICS:
        cells = [f"{_value(columns[n], protocol, metric):>{max(9, len(n))}}" for n in names]
        lines.append(f"{label.ljust(width)}  " + "  ".join(cells))
    return "\n".join(lines)


def grounding_verdict(matched: dict, mismatched: dict, changed: int, total: int, margin: float = 10.0
                      ) -> tuple[bool, str]:
    """Whether the answers are image-grounded: some headline metric is at least `margin` points higher with each
    question's own image than with another image of a different modality, and the answers do change with the image.
    Returns `(grounded, one sentence with the evidence)`."""
    gains = {label: float(matched[p][m]) - float(mismatched[p][m]) for p, m, label in HEADLINE_METRICS
             if matched.get(p, {}).get(m) is not None and mismatched.get(p, {}).get(m) is not None}
    best = max(gains, key=gains.get) if gains else None
    evidence = (f"{changed} of {total} answers change when each image is swapped for one of another modality, and "
                + (f"the largest score gain from the right image is {gains[best]:+.1f} points ({best})" if best
                   else "there is no score to compare"))
    grounded = bool(best) and changed > 0 and gains[best] >= margin
    return grounded, evidence
