"""Every metric on hand-made cases whose answers were worked out by hand, including the documented traps."""

import math
import sys
import warnings

import pytest

from hf_medvlm.eval.metrics import (
    MC_INSTRUCTION,
    bleu_scores,
    build_mc_prompt,
    compute_mc_metrics,
    compute_vqa_metrics,
    gold_letter,
    llava_med_closed_hit,
    llava_med_open_scores,
    match_choice,
    normalize_llava_med,
    normalize_strict,
    score_vqa_item,
    strict_closed_hit,
    strict_open_scores,
)


# --- llava_med normalisation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is: Yes.", "answer is: yes"),  # article dropped, final period stripped, ':' is not in the list
        ("left-lung", "left lung"),  # '-' without a neighbouring space becomes a space
        ("left - lung", "left lung"),  # '-' next to a space is deleted
        ("1,000 cells", "1000 cells"),  # digit,digit: every punctuation mark is deleted, then commas
        ("Two nodules, three.", "2 nodules 3"),  # number words to digits
        ("None", "0"),  # "none" is a number word in VQA-v2
        ("dont know", "don't know"),  # contraction map
        ("somebody'd", "somebodyd"),  # a quirk of the VQA-v2 table, kept
        ("a 3.5 cm mass", "3.5 cm mass"),  # a period followed by a digit survives
        ("(right) lung?", "right lung"),
    ],
)
def test_normalize_llava_med(text, expected):
    assert normalize_llava_med(text) == expected


def test_normalize_llava_med_strips_at_most_32_periods():
    # The original passes re.UNICODE (32) as `count` to re.sub.
    assert normalize_llava_med("x." * 40) == "x" * 33 + ".x" * 7 + "."


# --- llava_med closed ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prediction, reference, hit",
    [
        ("Yes, there is an effusion.", "yes", 1.0),
        ("No.", "no", 1.0),
        ("Yes", "no", 0.0),
        ("There is a nodule in the left lung.", "no", 1.0),  # TRAP: "no" inside "nodule"
        ("This is not normal.", "no", 1.0),  # TRAP: "no" inside "not"/"normal"
        ("yes and no", "yes", 1.0),  # TRAP: hedging hits both answers
        ("yes and no", "no", 1.0),
        ("The left lung", "left", 0.0),  # no yes/no in the prediction: a miss even though it contains the answer
        ("No, the left lung is larger", "left", 1.0),  # any "no" opens the gate for a non-yes/no reference
        ("", "yes", 0.0),  # empty prediction
    ],
)
def test_llava_med_closed_hit(prediction, reference, hit):
    assert llava_med_closed_hit(prediction, reference) == hit


# --- llava_med open -----------------------------------------------------------------------------------------------------


def test_llava_med_open_scores_by_hand():
    scores = llava_med_open_scores("pleural effusion effusion", "right pleural effusion")
    # tp counts the prediction's occurrences of shared words: pleural 1 + effusion 2 = 3; fn = "right" = 1.
    assert scores["recall"] == pytest.approx(3 / 4)
    assert scores["precision"] == pytest.approx(1.0)
    assert scores["f1"] == pytest.approx(2 * 0.75 / 1.75)
    # original exact match: distinct reference words found (2) / prediction words (3)
    assert scores["exact_match"] == pytest.approx(2 / 3)
    assert scores["substring_hit"] == 0.0
    # unigram clipped 2/3, brevity penalty 1 (equal lengths); bigrams: 1 of 2 match
    assert scores["bleu_1"] == pytest.approx(2 / 3)
    assert scores["bleu_2"] == pytest.approx(1 / 2)
    assert scores["bleu_3"] == pytest.approx(sys.float_info.min)  # NLTK method0: zero precision -> float min
    expected = math.exp(0.25 * (math.log(2 / 3) + math.log(1 / 2) + 2 * math.log(sys.float_info.min)))
    assert scores["bleu"] == pytest.approx(expected)


def test_llava_med_open_recall_perfect_and_zero():
    assert llava_med_open_scores("The liver.", "liver")["recall"] == 1.0
    assert llava_med_open_scores("kidney", "liver") == pytest.approx(
        dict(recall=0, precision=0, f1=0, exact_match=0, substring_hit=0, bleu=0, bleu_1=0, bleu_2=0, bleu_3=0,
             bleu_4=0)
    )
    assert llava_med_open_scores("", "liver")["recall"] == 0.0


def test_llava_med_open_substring_hit_is_a_trap_for_short_answers():
    # "ct" inside "ectopic": run_eval_batch.py's open accuracy counts it.
    assert llava_med_open_scores("ectopic pregnancy", "ct")["substring_hit"] == 1.0
    assert llava_med_open_scores("ectopic pregnancy", "ct")["recall"] == 0.0


# --- BLEU ---------------------------------------------------------------------------------------------------------------


def test_bleu_scores_hand_checked():
    ref = "the cat sat on the mat".split()
    assert bleu_scores(ref, ref) == pytest.approx(dict(bleu=1, bleu_1=1, bleu_2=1, bleu_3=1, bleu_4=1))
    # one word changed: n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths -> BP 1, geometric mean (1/12)^(1/4)
    scores = bleu_scores(ref, "the cat sat on a mat".split())
    assert [scores[f"bleu_{n}"] for n in range(1, 5)] == pytest.approx([5 / 6, 3 / 5, 2 / 4, 1 / 3])
    assert scores["bleu"] == pytest.approx((1 / 12) ** 0.25)
    # 3 matching tokens against 6: BP = exp(1 - 6/3) = e^-1; no 4-gram -> float min, not 0
    scores = bleu_scores(ref, "the cat sat".split())
    assert scores["bleu_1"] == pytest.approx(math.exp(-1))
    assert scores["bleu_4"] == pytest.approx(sys.float_info.min * math.exp(-1))
    # clipping: "the" occurs twice in the reference, so 2 of 3 count
    assert bleu_scores(ref, "the the the".split())["bleu_1"] == pytest.approx(2 / 3 * math.exp(1 - 6 / 3))
    # no unigram match or an empty hypothesis: exactly 0 for every weighting, as NLTK
    assert set(bleu_scores(ref, ["dog"]).values()) == {0.0}
    assert set(bleu_scores(ref, []).values()) == {0.0}


def test_bleu_scores_silence_nltk_zero_count_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bleu_scores(["a", "b"], ["a", "c"])["bleu_2"] == pytest.approx(sys.float_info.min)


# --- strict -------------------------------------------------------------------------------------------------------------


def test_normalize_strict():
    assert normalize_strict("  The Left-Lung, two!  ") == "left lung 2"


@pytest.mark.parametrize(
    "prediction, reference, hit",
    [
        ("Yes, there is.", "yes", 1.0),
        ("There is a nodule in the left lung.", "no", 0.0),  # the llava_med trap does not fire
        ("This is not normal.", "no", 0.0),
        ("yes and no", "no", 0.0),  # the first yes/no word decides
        ("No. Yes, on second thought", "yes", 0.0),
        ("Left", "left", 1.0),  # non yes/no closed answers: exact match
        ("the left lung", "left", 0.0),
        ("", "yes", 0.0),
    ],
)
def test_strict_closed_hit(prediction, reference, hit):
    assert strict_closed_hit(prediction, reference) == hit


def test_strict_open_scores():
    assert strict_open_scores("The pleural effusion.", "pleural effusion")["exact_match"] == 1.0
    scores = strict_open_scores("pleural effusion effusion", "right pleural effusion")
    assert scores["exact_match"] == 0.0
    # Counter overlap: pleural 1 + effusion 1 = 2 -> precision 2/3, recall 2/3
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert strict_open_scores("", "liver")["f1"] == 0.0


# --- aggregate ----------------------------------------------------------------------------------------------------------


def test_compute_vqa_metrics_both_protocols():
    preds = ["There is a nodule.", "Yes", "liver", "right kidney", ""]
    refs = ["no", "yes", "liver", "left kidney", "spleen"]
    types = ["closed", "closed", "open", "open", "open"]
    med = compute_vqa_metrics(preds, refs, types, protocol="llava_med")
    assert med["protocol"] == "llava_med"
    assert med["closed_accuracy"] == 1.0  # the "nodule" trap counts as a hit
    assert med["open_recall"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert (med["num_closed"], med["num_open"], med["num_empty_predictions"]) == (2, 3, 1)
    strict = compute_vqa_metrics(preds, refs, types, protocol="strict")
    assert strict["closed_accuracy"] == 0.5
    assert strict["open_exact_match"] == pytest.approx(1 / 3)
    assert strict["num_closed_without_yes_no_word"] == 1


def test_compute_vqa_metrics_missing_type_is_none_not_zero():
    result = compute_vqa_metrics(["yes"], ["yes"], ["closed"])
    assert result["closed_accuracy"] == 1.0 and result["open_recall"] is None


def test_compute_vqa_metrics_bad_input():
    with pytest.raises(ValueError, match="same length"):
        compute_vqa_metrics(["a"], ["a", "b"], ["open"])
    with pytest.raises(ValueError, match="reference 0 is empty"):
        compute_vqa_metrics(["a"], [""], ["open"])
    with pytest.raises(ValueError, match="answer_type 0"):
        compute_vqa_metrics(["a"], ["a"], ["OPEN"])
    with pytest.raises(ValueError, match="unknown protocol"):
        score_vqa_item("a", "a", "open", protocol="paper")


# --- multiple choice ----------------------------------------------------------------------------------------------------


def test_build_mc_prompt_exact_format():
    prompt = build_mc_prompt("Which organ?", ["Liver", "Spleen"])
    assert prompt == "Which organ?\nA. Liver\nB. Spleen\nAnswer with the option's letter from the given choices directly."
    assert prompt.endswith(MC_INSTRUCTION)
    with pytest.raises(ValueError, match="at most 11"):
        build_mc_prompt("q", [str(i) for i in range(12)])


@pytest.mark.parametrize(
    "text, options, expected",
    [
        ("B", ["x", "y"], ("B", "letter")),
        ("The answer is C.", ["x", "y", "z"], ("C", "letter")),
        ("(D) edema", ["a", "b", "c", "edema"], ("D", "letter")),
        ("I think it is B", ["x", "y"], ("I", "letter")),  # TRAP: the pronoun "I" is a letter to the regex
        ("answer: b", ["x", "y"], ("b", "letter")),  # TRAP: lower-case letters match and are kept lower-case
        ("A pneumonia", ["pneumonia", "edema"], ("A", "option_text")),  # "A " is skipped as an article
        ("It shows edema, not pneumonia", ["pneumonia", "edema"], ("A", "option_text")),  # last occurrence wins
        ("pnemonia", ["pneumonia", "edema"], ("A", "closest")),
        ("", ["pneumonia", "edema"], ("B", "closest")),  # all ratios 0: the last option wins (">=")
    ],
)
def test_match_choice(text, options, expected):
    assert match_choice(text, options) == expected


def test_gold_letter():
    assert gold_letter(["x", "y"], answer="y") == "B"
    assert gold_letter(["x", "y"], answer_label="A") == "A"
    assert gold_letter(["x", "y"], answer="?") is None
    with pytest.raises(ValueError, match="not one of the options"):
        gold_letter(["x", "y"], answer="z")
    with pytest.raises(ValueError, match="answer_label 'C'"):
        gold_letter(["x", "y"], answer_label="C")


def test_compute_mc_metrics_counts_rules_and_groups():
    preds = ["A", "The answer is b", "edema", "pnemonia"]
    options = [["pneumonia", "edema"]] * 4
    gold = ["A", "B", "B", None]
    result = compute_mc_metrics(preds, options, gold, datasets=["RAD", "RAD", "SLAKE", "SLAKE"],
                                subsets=["", "", "CT", "CT"])
    assert result["protocol"] == "huatuo_mc"
    assert result["accuracy"] == 0.5  # "b" != "B" (kept quirk); gold "?" is always wrong
    assert result["decided_by"] == {"letter": 2, "option_text": 1, "closest": 1}
    assert result["accuracy_by_group"] == {"RAD": 0.5, "SLAKE": 0.5, "SLAKE_CT": 0.5}
