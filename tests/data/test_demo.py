"""The embedded demo set: real images, answers that agree with the DICOM headers, loadable Parquet configs."""

from __future__ import annotations

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


def _eval_answers(records, key):
    return {(r["question_type"], r["answer_type"], r["question"]): r["answer"] for r in records["eval"]
            if r["id"].startswith(f"demo-eval-{key}-")}


def test_demo_has_three_splits_with_real_images(demo_records):
    assert {k: len(v) > 0 for k, v in demo_records.items()} == {"alignment": True, "instruct": True, "eval": True}
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


@pytest.mark.parametrize("spec", DICOM_SPECS, ids=lambda s: s.key)
def test_demo_answers_agree_with_the_dicom_header(demo_records, spec):
    ds = _header(spec)
    answers = _eval_answers(demo_records, spec.key)
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


def test_specific_header_facts(demo_records):
    by_key = {spec.key: _eval_answers(demo_records, spec.key) for spec in DICOM_SPECS}
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
