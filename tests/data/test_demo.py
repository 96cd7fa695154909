"""The embedded demo set: real images, answers that agree with the DICOM headers, loadable Parquet configs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from datasets import load_dataset

from hf_medvlm.data.demo import DICOM_SPECS
from hf_medvlm.data.schema import validate_eval_record, validate_training_record

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

# The test's own reading of the DICOM standard's Modality codes (independent of the product's table).
EXPECTED_MODALITY = {"CT": "ct", "MR": "mri", "CR": "x-ray", "US": "ultrasound", "NM": "nuclear medicine"}


def _header(spec):
    return pydicom.dcmread(get_testdata_file(spec.file), stop_before_pixels=True)


def _answers(facts, key):
    """Every question the facts of image `key` support (eval split or instruct conversations), with its answer."""
    from hf_medvlm.data.demo import questions_for

    qas = questions_for(next(f for f in facts if f.key == key))
    return {(qa.question_type, qa.answer_type, qa.question): qa.answer for qa in qas}


def _texts(records) -> list[str]:
    texts = [r[k] for r in records["eval"] for k in ("question", "answer")]
    for row in records["alignment"] + records["instruct"]:
        texts += [b["text"] for m in row["messages"] for b in m["content"] if b.get("text")]
    return texts


def test_demo_has_three_splits_with_real_images(demo_records):
    assert {k: len(v) > 0 for k, v in demo_records.items()} == {
        "alignment": True, "instruct": True, "eval": True, "eval_mismatched_images": True}
    keys = {r["id"].removeprefix("demo-instruct-") for r in demo_records["instruct"]}
    assert len(keys) >= 14  # 10 DICOM + 4 scikit-image images
    for row in demo_records["instruct"]:
        image = row["images"][0]
        assert image.mode == "RGB" and max(image.size) <= 512
        assert np.asarray(image).std() > 5, f"{row['id']} renders as a flat image"


def test_every_demo_record_passes_the_validators(demo_records):
    for row in demo_records["alignment"] + demo_records["instruct"]:
        validate_training_record(row)
    for row in demo_records["eval"]:
        validate_eval_record(row)


def test_eval_has_open_and_closed_questions_with_both_yes_and_no(demo_records):
    types = {r["answer_type"] for r in demo_records["eval"]}
    closed = [r["answer"] for r in demo_records["eval"] if r["answer_type"] == "closed"]
    assert types == {"open", "closed"}
    assert set(closed) == {"yes", "no"}


def test_eval_asks_only_held_out_question_types_that_no_conversation_asks(demo_records, demo_facts):
    from hf_medvlm.data.demo import HELD_OUT_QUESTION_TYPES, questions_for

    assert {r["question_type"] for r in demo_records["eval"]} == set(HELD_OUT_QUESTION_TYPES)
    held_out = {qa.question for f in demo_facts for qa in questions_for(f)
                if qa.question_type in HELD_OUT_QUESTION_TYPES}
    asked = {b["text"] for row in demo_records["instruct"] for m in row["messages"] if m["role"] == "user"
             for b in m["content"] if b.get("text")}
    assert held_out and not held_out & asked
    assert not any("modality" in q.lower() or "this a" in q.lower() and "scan" in q.lower() for q in asked)
    assert len(demo_records["instruct"]) == len(demo_facts)  # every image still has a conversation


def test_mismatched_image_control_shows_each_question_an_image_of_another_modality(demo_records, demo_facts):
    modality_of = {id(f.image): f.modality for f in demo_facts}
    control = demo_records["eval_mismatched_images"]
    assert [(r["id"], r["question"], r["answer"]) for r in control] == [
        (r["id"], r["question"], r["answer"]) for r in demo_records["eval"]]
    for real, swapped in zip(demo_records["eval"], control):
        assert modality_of[id(swapped["image"])] != modality_of[id(real["image"])]


def test_demo_texts_use_the_right_indefinite_article(demo_records):
    # "an" before a vowel sound: vowel letters, and the letter names of MRI / X-ray (em, ex); "a" otherwise.
    wrong_a = re.compile(r"\ba (?:[aeiouAEIOU]|MR|X-)")
    wrong_an = re.compile(r"\ban (?![aeiouAEIOU]|MR|X-)", re.IGNORECASE)
    bad = [t for t in _texts(demo_records) if wrong_a.search(t) or wrong_an.search(t)]
    assert not bad, bad
    assert any(" an " in t for t in _texts(demo_records)) and any(" a " in t for t in _texts(demo_records))


@pytest.mark.parametrize("spec", DICOM_SPECS, ids=lambda s: s.key)
def test_demo_answers_agree_with_the_dicom_header(demo_facts, spec):
    ds = _header(spec)
    answers = _answers(demo_facts, spec.key)
    assert answers[("modality", "open", "What imaging modality was used?")] == EXPECTED_MODALITY[ds.Modality]
    organ = [a for (qt, at, _), a in answers.items() if qt == "organ"]
    if spec.body_part_field and ds.get(spec.body_part_field):
        assert organ == [str(ds.get(spec.body_part_field)).lower()]
    else:
        assert organ == []
    view = [a for (qt, _, _), a in answers.items() if qt == "view"]
    assert view == ([ds.ViewPosition.lower()] if ds.get("ViewPosition") else [])
    contrast = [a for (qt, at, _), a in answers.items() if qt == "contrast" and at == "open"]
    assert contrast == ([ds.ContrastBolusAgent.lower()] if ds.get("ContrastBolusAgent") else [])


def test_specific_header_facts(demo_facts):
    by_key = {spec.key: _answers(demo_facts, spec.key) for spec in DICOM_SPECS}
    assert by_key["cr_tibia"][("finding", "open", "What lesion does the study description report?")] == \
        "non-ossifying fibroma of distal tibia"
    assert by_key["cr_chest"][("organ", "open", "Which part of the body is shown?")] == "chest"
    assert by_key["ct_small"][("plane", "open", "In which plane was this image acquired?")] == "axial"
    assert by_key["mr_shoulder"][("weighting", "open", "What is the MRI weighting?")] == "t1"
    assert by_key["us_obstetrical"][("exam", "open", "What type of examination is this?")] == "obstetrical ultrasound"


def test_monochrome1_is_inverted():
    from hf_medvlm.data.imaging import dicom_to_pil

    ds = pydicom.dcmread(get_testdata_file("RG3_UNCI.dcm"))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    shown = np.asarray(dicom_to_pil(ds).convert("L"), dtype=int)
    ds.PhotometricInterpretation = "MONOCHROME2"
    raw = np.asarray(dicom_to_pil(ds).convert("L"), dtype=int)
    assert np.array_equal(shown, 255 - raw)


def test_demo_folder_loads_with_each_config(demo_folder, demo_records):
    for name, split, n in (("alignment", "train", len(demo_records["alignment"])),
                           ("instruct", "train", len(demo_records["instruct"])),
                           ("eval", "test", len(demo_records["eval"]))):
        ds = load_dataset(str(demo_folder), name=name, split=split)
        assert ds.num_rows == n
    row = load_dataset(str(demo_folder), name="instruct", split="train")[0]
    assert row["images"][0].mode == "RGB"
    assert row["messages"][0]["content"][0] == {"type": "image", "text": None}
    card = (demo_folder / "README.md").read_text()
    assert "license: other" in card and "RG3_UNCI.dcm" in card


def test_build_demo_splits_returns_datasets():
    from hf_medvlm.data.demo import build_demo_splits
    from hf_medvlm.data.schema import EVAL_FEATURES, TRAINING_FEATURES

    splits = build_demo_splits()
    assert splits["instruct"].features == TRAINING_FEATURES
    assert splits["eval"].features == EVAL_FEATURES
    assert splits["alignment"][0]["images"][0].size[0] > 0
