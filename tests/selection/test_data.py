import random

import pytest

from hf_medvlm.selection.data import (
    PAIR_FEATURES, candidate_from_row, candidate_text, pairs_from_clinician_choices, pairs_from_ratings,
    validate_pairs,
)

from .conftest import make_pairs, rated_row


def test_pairs_from_ratings_prefers_the_higher_rating_and_counts_bad_rows():
    rng = random.Random(0)
    rows = [rated_row(rng, r) for r in (2, 3, 8, 9, 5, 5)]
    rows += [rated_row(rng, None), rated_row(rng, 11), rated_row(rng, 7, image=False), rated_row(rng, "7")]
    pairs, report = pairs_from_ratings(rows, num_pairs=10, seed=0)
    assert report.to_dict() == {"null_rating": 1, "rating_out_of_range": 1, "missing_image": 1, "invalid_rating": 1}
    assert report.total == 4 and "null_rating: 1" in report.summary()
    assert pairs and all(p["source"] == "model" for p in pairs)
    for pair in pairs:
        ratings = (pair["rating_a"], pair["rating_b"])
        assert ratings[pair["label"]] > ratings[1 - pair["label"]]
    assert {p["label"] for p in pairs} == {0, 1}  # positions are randomised


def test_pairs_from_ratings_raises_on_bad_row_when_asked():
    rng = random.Random(0)
    rows = [rated_row(rng, 3), {**rated_row(rng, None), "id": "r-null"}]
    with pytest.raises(ValueError, match="r-null.*null_rating"):
        pairs_from_ratings(rows, on_error="raise")


def test_pairs_from_ratings_needs_two_levels():
    rng = random.Random(0)
    with pytest.raises(ValueError, match="differ"):
        pairs_from_ratings([rated_row(rng, 4), rated_row(rng, 4)])


def test_candidate_from_row_first_round_and_all_rounds():
    row = rated_row(random.Random(0), 5)
    row["messages"] += [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    first = candidate_from_row(row)
    assert "q2" not in first["answer"] and first["caption"].startswith("caption")
    everything = candidate_from_row(row, qa_rounds=0)
    assert everything["answer"].endswith("Question: q2\nAnswer: a2")
    text = candidate_text(first["caption"], first["question"], first["answer"])
    assert text.startswith("caption") and "\nQuestion: " in text and "\nAnswer: " in text
    assert candidate_text("cap", "q", "a", include_caption=False) == "Question: q\nAnswer: a"


def test_validate_pairs_counts_every_problem():
    good = make_pairs(3, "human", seed=0)
    missing = {**good[0], "id": "m", "image_b": None}
    identical = {**good[1], "id": "i"}
    for name in ("image", "caption", "question", "answer"):
        identical[f"{name}_b"] = identical[f"{name}_a"]
    bad_label = {**good[2], "id": "l", "label": 2}
    bad_source = {**good[2], "id": "s", "source": "crowd"}
    no_text = {**good[2], "id": "t", "answer_a": " "}
    dataset, report = validate_pairs(good + [missing, identical, bad_label, bad_source, no_text])
    assert len(dataset) == 3 and dataset.features == PAIR_FEATURES
    assert report.to_dict() == {"missing_image": 1, "identical_candidates": 1, "bad_label": 1, "bad_source": 1,
                                "missing_text": 1}
    with pytest.raises(ValueError, match="'l'.*bad_label"):
        validate_pairs(good + [bad_label], on_error="raise")


def test_validate_pairs_on_a_dataset_keeps_good_rows():
    pairs = make_pairs(4, "model", seed=1)
    pairs[1]["label"] = 1 - pairs[1]["label"]  # still valid
    dataset, _ = validate_pairs(pairs)
    again, report = validate_pairs(dataset)
    assert len(again) == 4 and report.total == 0


def test_clinician_choices_become_human_pairs():
    image = make_pairs(1, "human", seed=0)[0]["image_a"]
    records = [{"img": image, "question": "what modality?", "answer_positive": "CT", "answer_negative": "none"}]
    pairs = pairs_from_clinician_choices(records)
    pair = pairs[0]
    assert pair["source"] == "human"
    assert pair[f"answer_{'ab'[pair['label']]}"] == "CT"
    dataset, report = validate_pairs(pairs)
    assert len(dataset) == 1 and report.total == 0


def test_long_captions_are_cut_never_the_question_and_answer():
    from hf_medvlm.selection.data import fit_candidate_text, fit_candidate_texts
    from hf_medvlm.testing.tiny_selector import tiny_selector_processor

    tokenizer = tiny_selector_processor().tokenizer  # word-level: one token per word, plus <bos>/<eos>
    caption = " ".join(f"w{i}" for i in range(20))
    question, answer = "w30 w31", "good w32 w33"
    plain = tokenizer(candidate_text(caption, question, answer), truncation=True, max_length=16)["input_ids"]
    assert "good" not in tokenizer.decode(plain)  # caption first + right truncation loses the QA being judged

    text, outcome = fit_candidate_text(tokenizer, caption, question, answer, max_length=16)
    assert outcome == "caption_truncated" and len(tokenizer(text)["input_ids"]) == 16
    assert text == candidate_text(" ".join(f"w{i}" for i in range(7)), question, answer)  # 7 caption words fit

    long_qa = " ".join(["good"] + [f"w{i}" for i in range(14)])
    assert fit_candidate_text(tokenizer, caption, question, long_qa, max_length=16) == (
        candidate_text(None, question, long_qa), "qa_truncated")
    exact_qa = " ".join(f"w{i}" for i in range(10))  # question: w30 w31 answer: + 10 words + 2 specials = 16
    assert fit_candidate_text(tokenizer, caption, question, exact_qa, max_length=16)[1] == "caption_dropped"
    assert fit_candidate_text(tokenizer, "w1 w2", question, answer, max_length=16) == (
        candidate_text("w1 w2", question, answer), "")

    candidates = [{"caption": caption, "question": question, "answer": a} for a in (answer, long_qa, answer)]
    _, counts = fit_candidate_texts(tokenizer, candidates + [{"caption": "", "question": "w1", "answer": "w2"}],
                                    max_length=16)
    assert counts == {"caption_truncated": 2, "qa_truncated": 1}


def test_pair_collator_keeps_the_answer_and_training_counts_truncations(tmp_path):
    from hf_medvlm.selection.training import PairCollator, text_truncation
    from hf_medvlm.testing.tiny_selector import tiny_selector_processor

    processor = tiny_selector_processor()
    pairs = make_pairs(4, "human", seed=0)
    for pair in pairs:
        pair["caption_a"] = pair["caption_b"] = " ".join(f"w{i}" for i in range(40))
    batch = PairCollator(processor, max_length=20)(pairs)  # every QA here is at most 17 tokens
    decoded = processor.tokenizer.batch_decode(batch["input_ids"])
    answers = [p["answer_a"] for p in pairs] + [p["answer_b"] for p in pairs]
    assert all(answer in text for answer, text in zip(answers, decoded))
    assert text_truncation(processor, pairs, include_caption=True, max_length=20) == {"caption_truncated": 8}
    assert text_truncation(processor, pairs, include_caption=True, max_length=100) == {}
