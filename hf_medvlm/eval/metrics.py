"""Medical VQA metrics as pure functions, under two named protocols, plus HuatuoGPT-Vision's multiple-choice protocol.

`protocol="llava_med"` reproduces LLaVA-Med v1.0's `run_eval.py` + `eval_metrics/*` to the letter, quirks included,
so that numbers can be compared with the paper:

- normalisation is VQA-v2's `normalize_word` (see `normalize_llava_med`), applied to the lowercased texts; the open
  metrics normalise a second time, as the original does by calling `calculate_f1score` on already-normalised strings;
- a closed question is a hit when the normalised prediction contains "yes" or "no" *as a substring* and contains the
  normalised ground truth *as a substring*. So "no" matches inside "nodule", "not" and "normal", and "yes and no" hits
  every yes/no question. These traps are kept on purpose (parity) and are tested;
- the paper's "open" number is token recall: `tp` counts the prediction's occurrences of each word shared with the
  ground truth, `fn` the ground truth's occurrences of each word missing from the prediction, recall = tp / (tp + fn);
- "exact match" is the original's: distinct ground-truth words found in the prediction / number of prediction words;
- BLEU is NLTK's `sentence_bleu`, called as the original does: one reference, whitespace tokens of the normalised
  texts, no smoothing. `bleu` is the cumulative 4-gram score, `bleu_1..bleu_4` the single-order scores with weights
  (1,0,0,0) ... (0,0,0,1) as the original's `bleu_score_1..3`.

One deviation, because it is a bug that silently inflates the score: an early `run_eval.py` appended nothing for a
closed question whose prediction contained yes/no but not the ground truth, dropping that miss from the denominator
(`run_eval_batch.py` calls this "dangerous"). Here every closed question counts.

`protocol="strict"` is the deterministic alternative: a closed yes/no question is judged by the *first* yes/no word of
the answer (whole words only), other closed questions and open questions by normalised exact match, plus token F1.

Multiple choice follows HuatuoGPT-Vision's `eval.py`/`scorer.py`: lettered options, the exact instruction string
`MC_INSTRUCTION`, and matching by (1) the original letter regex, (2) the option text occurring last in the output,
(3) the option most similar by `difflib`. See `match_choice` for the quirks kept.

Aggregate functions return fractions in [0, 1] (the `evaluate` convention); the eval entry point writes percentages.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
import unicodedata
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

__all__ = [
    "PROTOCOLS",
    "MC_PROTOCOL",
    "MC_INSTRUCTION",
    "OPTION_LETTERS",
    "normalize_llava_med",
    "normalize_strict",
    "bleu_scores",
    "llava_med_closed_hit",
    "llava_med_open_scores",
    "strict_closed_hit",
    "strict_open_scores",
    "score_vqa_item",
    "compute_vqa_metrics",
    "build_mc_prompt",
    "gold_letter",
    "match_choice",
    "compute_mc_metrics",
]

PROTOCOLS = ("llava_med", "strict")
MC_PROTOCOL = "huatuo_mc"
# The exact instruction HuatuoGPT-Vision's eval.py appends; the scores it reports depend on this wording.
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
OPTION_LETTERS = "ABCDEFGHIJK"  # eval.py letters options A..K
ANSWER_TYPES = ("open", "closed")


# --- llava_med normalisation (VQA-v2 style) --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _glossary() -> dict:
    return json.loads((Path(__file__).parent / "vqa_glossary.json").read_text())


# The original's period regex: "(?!<=\d)" was meant as a look-behind but is a look-ahead for the literal "<=" + digit,
# so every period not followed by a digit is removed ("3.5" keeps its period, "end." loses it).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(\,)(\d)")
# The original passes re.UNICODE (= 32) as the third *positional* argument of `sub`, which is `count`: at most 32
# periods are removed per call. Kept for parity.
_PERIOD_SUB_COUNT = int(re.UNICODE)


def normalize_llava_med(text: str) -> str:
    """LLaVA-Med v1.0 `normalize_word`: punctuation, periods, number words, articles, contractions, commas."""
    glossary = _glossary()
    out = text
    for p in glossary["punctuation"]:
        # Decided on the *input* text each time: a mark next to a space is deleted, otherwise replaced by a space,
        # and all marks are deleted when the text contains a digit-comma-digit group.
        drop = (p + " " in text or " " + p in text) or _COMMA_BETWEEN_DIGITS.search(text) is not None
        out = out.replace(p, "" if drop else " ")
    out = _PERIOD_STRIP.sub("", out, _PERIOD_SUB_COUNT)
    words = [glossary["number_words"].get(w, w) for w in out.lower().split()]
    words = [glossary["contractions"].get(w, w) for w in words if w not in glossary["articles"]]
    return " ".join(words).replace(",", "")


# --- BLEU ------------------------------------------------------------------------------------------------------------

_BLEU_WEIGHTS = {
    "bleu": (0.25, 0.25, 0.25, 0.25),
    "bleu_1": (1, 0, 0, 0),
    "bleu_2": (0, 1, 0, 0),
    "bleu_3": (0, 0, 1, 0),
    "bleu_4": (0, 0, 0, 1),
}


def bleu_scores(reference: Sequence[str], hypothesis: Sequence[str]) -> dict[str, float]:
    """NLTK's unsmoothed `sentence_bleu` of one reference, for every weighting in `_BLEU_WEIGHTS` (token lists).

    NLTK returns 0 when no unigram matches; a zero higher-order precision becomes `sys.float_info.min` ("method0"),
    so a cumulative score with two orders missing is about 1e-154 rather than 0. Its warning for that case fires on
    most short answers, and the original silenced all warnings, so it is silenced here too. nltk is imported here
    because importing it takes over a second, which `eval --help` should not pay.
    """
    from nltk.translate.bleu_score import sentence_bleu

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="\\nThe hypothesis contains 0 counts")
        scores = sentence_bleu([list(reference)], list(hypothesis), weights=list(_BLEU_WEIGHTS.values()))
    return {name: float(score) for name, score in zip(_BLEU_WEIGHTS, scores)}


# --- llava_med per-question scores -----------------------------------------------------------------------------------


def llava_med_closed_hit(prediction: str, reference: str) -> float:
    """1.0 when the normalised prediction contains "yes" or "no" and the normalised reference, both as substrings."""
    pred, ref = normalize_llava_med(prediction.lower()), normalize_llava_med(reference.lower())
    return float(("yes" in pred or "no" in pred) and ref in pred)


def llava_med_open_scores(prediction: str, reference: str) -> dict[str, float]:
    """Open-question scores as `run_eval.py` computes them; `recall` is the paper's "Open" column.

    Word counts are the original's `split_sentence` (lowercase, whitespace split) of each text normalised once more,
    as the original does.
    """
    pred, ref = normalize_llava_med(prediction.lower()), normalize_llava_med(reference.lower())
    pred_words = Counter(normalize_llava_med(pred).lower().split())
    ref_words = Counter(normalize_llava_med(ref).lower().split())
    total = sum(pred_words.values())
    tp = sum(c for w, c in pred_words.items() if w in ref_words)  # the prediction's count of shared words
    fn = sum(c for w, c in ref_words.items() if w not in pred_words)
    precision, recall = (tp / total, tp / (tp + fn)) if tp else (0.0, 0.0)
    scores = {"recall": recall, "precision": precision,
              "f1": 2 * precision * recall / (precision + recall) if tp else 0.0,
              "exact_match": sum(1 for w in ref_words if w in pred_words) / total if total else 0.0,
              # run_eval_batch.py's "open accuracy": the whole normalised reference appears in the prediction.
              "substring_hit": float(ref in pred)}
    scores.update(bleu_scores(ref.lower().split(), pred.lower().split()))
    return scores


# --- strict protocol -------------------------------------------------------------------------------------------------

_NON_WORD = re.compile(r"[^\w\s]|_")


def normalize_strict(text: str) -> str:
    """NFKC, lowercase, punctuation to spaces, number words zero..ten to digits, drop articles, single spaces."""
    glossary = _glossary()
    text = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower())
    words = [glossary["number_words"].get(w, w) for w in text.split()]
    return " ".join(w for w in words if w not in glossary["articles"])


def _first_yes_no(text: str) -> str | None:
    return next((w for w in normalize_strict(text).split() if w in ("yes", "no")), None)


def strict_closed_hit(prediction: str, reference: str) -> float:
    """Yes/no references: the first whole yes/no word of the prediction must equal it. Others: exact match."""
    ref = normalize_strict(reference)
    if ref in ("yes", "no"):
        return float(_first_yes_no(prediction) == ref)
    return float(normalize_strict(prediction) == ref)


def strict_open_scores(prediction: str, reference: str) -> dict[str, float]:
    """Normalised exact match and SQuAD-style token F1 (bag-of-words overlap, precision and recall)."""
    pred, ref = normalize_strict(prediction).split(), normalize_strict(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    scores = {"exact_match": float(pred == ref), "f1": 0.0, "precision": 0.0, "recall": 0.0}
    if common:
        precision, recall = common / len(pred), common / len(ref)
        scores.update(f1=2 * precision * recall / (precision + recall), precision=precision, recall=recall)
    return scores


# --- per question and aggregate --------------------------------------------------------------------------------------


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def score_vqa_item(prediction: str, reference: str, answer_type: str, protocol: str = "llava_med") -> dict[str, float]:
    """Scores of one question: `{"hit": ...}` for closed questions, the open scores otherwise."""
    _check_protocol(protocol)
    if answer_type == "closed":
        hit = llava_med_closed_hit if protocol == "llava_med" else strict_closed_hit
        return {"hit": hit(prediction, reference)}
    if answer_type == "open":
        open_scores = llava_med_open_scores if protocol == "llava_med" else strict_open_scores
        return open_scores(prediction, reference)
    raise ValueError(f"answer_type must be one of {ANSWER_TYPES}, got {answer_type!r}")


def _check_inputs(predictions: Sequence, **columns: Sequence) -> None:
    """Inputs of one length each, every prediction a string."""
    lengths = {"predictions": len(predictions)} | {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        *names, last = (f"{name} ({n})" for name, n in lengths.items())
        raise ValueError(f"{', '.join(names)} and {last} must have the same length")
    for i, pred in enumerate(predictions):
        if not isinstance(pred, str):
            raise ValueError(f"prediction {i} is {type(pred).__name__}, expected a string")


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def compute_vqa_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    answer_types: Sequence[str],
    protocol: str = "llava_med",
) -> dict:
    """Closed accuracy and open scores averaged over their questions, with counts and the protocol name.

    Metrics of a question type with no questions are `None` (never a made-up 0). Empty predictions are scored (they
    are wrong answers) and counted in `num_empty_predictions`.
    """
    _check_protocol(protocol)
    _check_inputs(predictions, references=references, answer_types=answer_types)
    for i, (ref, kind) in enumerate(zip(references, answer_types)):
        if not isinstance(ref, str) or not ref.strip():
            raise ValueError(f"reference {i} is empty or not a string; every question needs a ground-truth answer")
        if kind not in ANSWER_TYPES:
            raise ValueError(f"answer_type {i} is {kind!r}; expected one of {ANSWER_TYPES}")
    scored = [(kind, score_vqa_item(pred, ref, kind, protocol))
              for pred, ref, kind in zip(predictions, references, answer_types)]
    closed = [scores["hit"] for kind, scores in scored if kind == "closed"]
    open_scores = [scores for kind, scores in scored if kind == "open"]
    result = {"protocol": protocol, "closed_accuracy": _mean(closed)}
    names = (("exact_match", "f1", "precision", "recall") if protocol == "strict"
             else ("recall", "exact_match", "f1", "precision", "substring_hit", *_BLEU_WEIGHTS))
    result.update({f"open_{name}": _mean([scores[name] for scores in open_scores]) for name in names})
    result.update(
        num_closed=len(closed),
        num_open=len(predictions) - len(closed),
        num_empty_predictions=sum(1 for p in predictions if not p.strip()),
    )
    if protocol == "strict":
        yes_no = [p for p, r, k in zip(predictions, references, answer_types)
                  if k == "closed" and normalize_strict(r) in ("yes", "no")]
        result["num_closed_yes_no"] = len(yes_no)
        result["num_closed_without_yes_no_word"] = sum(_first_yes_no(p) is None for p in yes_no)
    return result


# --- multiple choice (HuatuoGPT-Vision) ------------------------------------------------------------------------------


def build_mc_prompt(question: str, options: Sequence[str]) -> str:
    """`{question}\\nA. opt\\nB. opt...\\n` + `MC_INSTRUCTION`, as HuatuoGPT-Vision's `llava_prompt`."""
    if not options:
        raise ValueError("a multiple-choice question needs at least one option")
    if len(options) > len(OPTION_LETTERS):
        raise ValueError(f"{len(options)} options given; the protocol letters at most {len(OPTION_LETTERS)} (A-K)")
    lines = "\n".join(f"{letter}. {option}" for letter, option in zip(OPTION_LETTERS, options))
    return f"{question}\n{lines}\n{MC_INSTRUCTION}"


def gold_letter(options: Sequence[str], answer: str | None = None, answer_label: str | None = None) -> str | None:
    """The gold letter: `answer_label` when given, else the letter of `answer` in `options`.

    Returns None for the original's "?" answer (counted wrong). Raises when the answer is not an option.
    """
    if answer_label:
        letter = answer_label.strip()
        if letter not in OPTION_LETTERS[: len(options)]:
            raise ValueError(f"answer_label {answer_label!r} is not one of the {len(options)} option letters")
        return letter
    if answer == "?":
        return None
    if answer not in options:
        raise ValueError(f"answer {answer!r} is not one of the options {list(options)!r} and no answer_label is given")
    return OPTION_LETTERS[list(options).index(answer)]


# scorer.py's `match_choice3` regex, verbatim. It also matches lower-case letters (returned as they are, so "b" never
# equals the gold "B"), and "I" at the start of "I think ..." counts as a letter. `(?![aA] )` skips the article "A ".
_LETTER_PATTERN = re.compile(r"(is |是|\*|\W|\ |\(|为|^|'|\"|#)(?![aA] )([abcdefghijklmnABCDEFGHIJKLMN])(\W|$)", re.S)


def match_choice(text: str, options: Sequence[str]) -> tuple[str, str]:
    """The letter an answer picks and the rule that decided: `"letter"`, `"option_text"` or `"closest"`.

    (1) the first standalone letter found by the original regex; (2) the option whose text occurs *last* in the
    lowercased output (by its last occurrence); (3) the option most similar to the whole output (`difflib` ratio).
    The original's steps (2)/(3) loop over every field of the row dict instead of the options (a bug that makes them
    useless); here they use the options, as intended.
    """
    if not options:
        raise ValueError("match_choice needs at least one option")
    found = _LETTER_PATTERN.search(text)
    if found:
        return found.group(2), "letter"
    lowered, lowered_options = text.lower(), [o.lower() for o in options]
    positions = {i: lowered.rindex(opt) for i, opt in enumerate(lowered_options) if opt in lowered}
    if positions:
        return OPTION_LETTERS[max(positions, key=positions.get)], "option_text"
    # Searched from the end: the last of equally similar options wins, as in the original (`>=` in its loop).
    ratio = lambda i: difflib.SequenceMatcher(None, lowered_options[i], lowered).ratio()  # noqa: E731
    return OPTION_LETTERS[max(reversed(range(len(options))), key=ratio)], "closest"


def compute_mc_metrics(
    predictions: Sequence[str],
    options: Sequence[Sequence[str]],
    gold_letters: Sequence[str | None],
    datasets: Iterable[str] | None = None,
    subsets: Iterable[str] | None = None,
) -> dict:
    """Accuracy, how many answers each matching rule decided, and accuracy per dataset and per dataset_subset."""
    _check_inputs(predictions, options=options, gold_letters=gold_letters)
    datasets = list(datasets) if datasets is not None else [""] * len(predictions)
    subsets = list(subsets) if subsets is not None else [""] * len(predictions)
    matched = [match_choice(pred, opts) for pred, opts in zip(predictions, options)]
    hits = [float(gold is not None and letter == gold) for (letter, _), gold in zip(matched, gold_letters)]
    groups: dict[str, list[float]] = defaultdict(list)
    for i, hit in enumerate(hits):
        if datasets[i]:
            groups[datasets[i]].append(hit)
            if subsets[i]:
                groups[f"{datasets[i]}_{subsets[i]}"].append(hit)
    return {
        "protocol": MC_PROTOCOL,
        "accuracy": _mean(hits),
        "num_questions": len(hits),
        "num_empty_predictions": sum(1 for p in predictions if not p.strip()),
        "decided_by": {rule: sum(r == rule for _, r in matched) for rule in ("letter", "option_text", "closest")},
        "accuracy_by_group": {name: _mean(values) for name, values in sorted(groups.items())},
    }
