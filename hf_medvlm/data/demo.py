"""A small but real medical dataset, built offline in seconds from images that pip packages ship.

Images: DICOM test files of `pydicom` / `pydicom-data` (CT, MR, chest and extremity radiographs, ultrasound, a
nuclear-medicine bone scan) and `scikit-image` sample data (IHC histology, fundus photographs, a phase image).
Every question and answer is derived from facts the files carry: DICOM header fields (Modality,
BodyPartExamined, ViewPosition, ImageType / ImageOrientationPatient, ContrastBolusAgent, ProtocolName,
Study/SeriesDescription) read at build time, and the packages' own docstrings, which are checked at build time to
still contain the phrases the facts rest on. Nothing is hand-labelled from looking at pixels.

Splits: `alignment` (stage-1 captions) and `instruct` (conversations) in the training schema; `eval` and its
image-swap control `eval_mismatched_images` in the eval schema. Eval asks only `HELD_OUT_QUESTION_TYPES`, which no
instruct turn asks in any wording (docs/demo.md, "What the numbers mean"); its images are the training images, so
this is a smoke-test set, not a benchmark.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .imaging import array_to_pil, dicom_to_pil, downscale, encode_image
from .instructions import pick_instruction
from .schema import DOMAINS, EVAL_FEATURES, TRAINING_FEATURES, image_block, text_block

__all__ = [
    "DEMO_SOURCE",
    "DEMO_LICENSE",
    "HELD_OUT_QUESTION_TYPES",
    "DESCRIBE_REQUEST",
    "DicomSpec",
    "DICOM_SPECS",
    "ImageFacts",
    "QA",
    "facts_from_dicom",
    "load_demo_facts",
    "questions_for",
    "build_demo_records",
    "build_demo_splits",
    "write_demo_dataset",
]

DEMO_SOURCE = "hf_medvlm_demo"
# Asked only in the eval split, never in the instruct conversations: the modality is the fact most visible in the
# pixels (CT, MRI, X-ray, ultrasound, microscopy and fundus photographs look nothing alike).
HELD_OUT_QUESTION_TYPES = ("modality",)
# The first turn of every instruct conversation. One fixed wording, so that only the image tells the descriptions apart.
DESCRIBE_REQUEST = "Describe the image briefly."
DEMO_LICENSE = "other"

# DICOM Modality code -> (short answer, long name, noun phrase for yes/no questions, LLaVA-Med domain)
MODALITIES = {
    "CT": ("ct", "computed tomography (CT) image", "a CT scan", "ct_scan"),
    "MR": ("mri", "magnetic resonance (MRI) image", "an MRI scan", "mri"),
    "CR": ("x-ray", "radiograph (computed radiography)", "an X-ray", None),
    "DX": ("x-ray", "radiograph (digital radiography)", "an X-ray", None),
    "US": ("ultrasound", "ultrasound image", "an ultrasound image", None),
    "NM": ("nuclear medicine", "nuclear medicine (scintigraphy) image", "a nuclear medicine scan", None),
}
# Used to ask "is this a <other modality>?" with a known "no".
OTHER_MODALITY_NOUNS = {
    "ct": "an MRI scan", "mri": "a CT scan", "x-ray": "an ultrasound image", "ultrasound": "an X-ray",
    "nuclear medicine": "a CT scan", "microscopy": "an X-ray", "fundus photography": "a CT scan",
    "quantitative phase imaging": "an ultrasound image",
}
VIEWS = {"PA": "posteroanterior (PA)", "AP": "anteroposterior (AP)", "LL": "lateral", "LATERAL": "lateral"}
# config -> (image column, features, split)
CONFIGS = {"alignment": ("images", TRAINING_FEATURES, "train"), "instruct": ("images", TRAINING_FEATURES, "train"),
           "eval": ("image", EVAL_FEATURES, "test"), "eval_mismatched_images": ("image", EVAL_FEATURES, "test")}
WEIGHTING_RE = re.compile(r"(?<![a-z0-9])(t1|t2|pd)(?![0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class DicomSpec:
    """Which DICOM file to use and which header fields hold its facts (the values themselves are read at build time)."""

    file: str
    key: str
    body_part_field: str | None = "BodyPartExamined"
    finding_field: str | None = None
    finding_pattern: str = r"(.+)"  # regex whose group 1 is the answer, applied to the finding field
    finding_question: str | None = None
    finding_caption: str = "Finding: {}."
    exam_field: tuple[str, int] | str | None = None  # a field, or (multi-valued field, index)
    exam_format: str = "{}"
    frame: int | None = None
    burn_overlay: bool = False


DICOM_SPECS: tuple[DicomSpec, ...] = (
    DicomSpec("CT_small.dcm", "ct_small"),
    DicomSpec(
        "examples_overlay.dcm", "mr_liver_overlay", finding_field="SeriesDescription",
        finding_pattern=r"marked (\w+)", finding_question="What is marked on this image?",
        finding_caption="A {} is marked on the image.", burn_overlay=True,
    ),
    DicomSpec("RG1_UNCI.dcm", "cr_chest"),
    DicomSpec(
        "RG3_UNCI.dcm", "cr_tibia", finding_field="StudyDescription",
        finding_question="What lesion does the study description report?", finding_caption="Study description: {}.",
    ),
    DicomSpec("MR2_UNCI.dcm", "mr_shoulder", body_part_field="StudyDescription"),
    DicomSpec("emri_small.dcm", "mr_head"),
    DicomSpec("eCT_Supplemental.dcm", "ct_perfusion", body_part_field=None, exam_field=("ImageType", 2),
              exam_format="CT {} map", frame=0),
    DicomSpec("examples_rgb_color.dcm", "us_small_parts", body_part_field=None, exam_field=("ImageType", 2),
              exam_format="{} ultrasound"),
    DicomSpec("examples_palette.dcm", "us_obstetrical", body_part_field=None, exam_field=("ImageType", 2),
              exam_format="{} ultrasound"),
    DicomSpec("JPEG2000_UNC.dcm", "nm_bone_scan", exam_field="StudyDescription", exam_format="{} scan"),
)


@dataclass
class ImageFacts:
    """What is known about one demo image, and where each fact comes from."""

    key: str
    origin: str
    license: str
    image: object  # PIL image, already RGB and downscaled
    modality: str
    modality_name: str
    modality_noun: str
    domain: str | None = None
    body_part: str | None = None
    plane: str | None = None
    view: str | None = None
    contrast: str | None = None
    weighting: str | None = None
    exam: str | None = None
    finding: str | None = None
    finding_question: str | None = None
    finding_caption: str = "Finding: {}."
    normal: bool | None = None


@dataclass(frozen=True)
class QA:
    question: str
    answer: str  # short answer, the eval target
    long_answer: str  # a sentence, used in conversations
    answer_type: str  # "open" | "closed"
    question_type: str


# ---------------------------------------------------------------------------------------------- DICOM facts


def _text(ds, name: str | None) -> str | None:
    value = ds.get(name) if name else None
    if value is None:
        return None
    return re.sub(r"<[^>]*>", "", str(value)).replace("^", " ").strip() or None


def plane_from_header(ds) -> str | None:
    """'axial'/'coronal'/'sagittal' from ImageType or the slice normal (within 15 degrees of an axis); else None."""
    if "AXIAL" in [str(v).upper() for v in ds.get("ImageType") or []]:
        return "axial"
    iop = [float(v) for v in ds.get("ImageOrientationPatient") or []]
    if len(iop) != 6:
        return None
    normal = np.abs(np.cross(iop[:3], iop[3:]))
    axis = int(normal.argmax())
    return ("sagittal", "coronal", "axial")[axis] if normal[axis] >= math.cos(math.radians(15)) else None


def weighting_from_header(ds) -> str | None:
    if ds.get("Modality") != "MR":
        return None
    text = " ".join([str(ds.get("ProtocolName") or "")] + [str(v) for v in ds.get("ImageType") or []])
    match = WEIGHTING_RE.search(text)
    return match.group(1).upper() if match else None


def _finding(ds, spec: DicomSpec) -> str | None:
    text = _text(ds, spec.finding_field)
    match = re.search(spec.finding_pattern, text) if text else None
    return match.group(1).strip().lower() if match else None


def _exam(ds, spec: DicomSpec) -> str | None:
    if isinstance(spec.exam_field, tuple):
        name, index = spec.exam_field
        values = list(ds.get(name) or [])
        value = str(values[index]).strip() if index < len(values) else None
    else:
        value = _text(ds, spec.exam_field)
    return spec.exam_format.format(value.lower()) if value else None


def facts_from_dicom(ds, spec: DicomSpec, max_side: int = 512) -> ImageFacts:
    """Read every fact of `spec` from the header of `ds` and render its pixels."""
    modality, name, noun, domain = MODALITIES[ds.Modality]
    body_part = (_text(ds, spec.body_part_field) or "").lower() or None
    if ds.Modality in ("CR", "DX") and body_part == "chest":
        domain = "chest_xray"
    return ImageFacts(
        key=spec.key, origin=f"pydicom test file {spec.file}", image=downscale(
            dicom_to_pil(ds, frame=spec.frame, burn_overlay=spec.burn_overlay), max_side),
        license="DICOM test image distributed with pydicom / pydicom-data (MIT-licensed packages)",
        modality=modality, modality_name=name, modality_noun=noun, domain=domain, body_part=body_part,
        plane=plane_from_header(ds), view=VIEWS.get(str(ds.get("ViewPosition") or "").upper()),
        contrast=_text(ds, "ContrastBolusAgent"), weighting=weighting_from_header(ds), exam=_exam(ds, spec),
        finding=_finding(ds, spec), finding_question=spec.finding_question, finding_caption=spec.finding_caption,
    )


# ------------------------------------------------------------------------------------ scikit-image facts

# Each fact rests on phrases of the function's docstring (checked at build time, in `load_demo_facts`).
SKIMAGE_SPECS = (
    dict(
        function="immunohistochemistry", key="ihc_colon", doc_phrases=("colonic glands", "DAB", "Hematoxylin"),
        modality="microscopy", modality_name="light micrograph of an immunohistochemistry (IHC) stained section",
        modality_noun="a microscopy image", domain="histology", body_part="colon",
        exam="immunohistochemistry with hematoxylin counterstain",
        finding="colonic glands", finding_question="What structures are shown?", finding_caption="It shows {}.",
    ),
    dict(
        function="retina", key="fundus_normal_left", doc_phrases=("Fundus_photograph_of_normal_left_eye",),
        modality="fundus photography", modality_name="colour fundus photograph",
        modality_noun="a fundus photograph", body_part="retina", exam="colour fundus photography",
        finding="left", finding_question="Which eye is shown?", finding_caption="It is the {} eye, described as normal.",
        normal=True,
    ),
    dict(
        function="microaneurysms", key="fundus_microaneurysms", doc_phrases=("retina (green channel)", "lesions"),
        modality="fundus photography", modality_name="green-channel crop of a fundus photograph",
        modality_noun="a fundus photograph", body_part="retina",
        finding="microaneurysms", finding_question="What lesions are shown?", normal=False,
        finding_caption="Lesions shown: {}.",
    ),
    dict(
        function="cell", key="phase_cell", doc_phrases=("Cell floating in saline", "quantitative phase image"),
        modality="quantitative phase imaging", modality_name="quantitative phase microscopy image",
        modality_noun="a quantitative phase image", finding="a single cell floating in saline",
        finding_question="What does the image show?", finding_caption="It shows {}.",
    ),
)


def load_demo_facts(max_side: int = 512) -> list[ImageFacts]:
    """Facts and rendered images for every demo image (DICOM first, then scikit-image)."""
    try:
        import skimage.data
        from pydicom import dcmread
        from pydicom.data import get_testdata_file
    except ImportError as err:
        raise ImportError(f"the demo set needs pydicom, pydicom-data and scikit-image ({err}): pip install "
                          "'hf_medvlm[demo]'") from err
    facts = []
    for dicom in DICOM_SPECS:
        path = get_testdata_file(dicom.file)
        if path is None:
            raise FileNotFoundError(f"DICOM test file {dicom.file} not found; install pydicom-data (hf_medvlm[demo])")
        facts.append(facts_from_dicom(dcmread(path), dicom, max_side))
    for spec in SKIMAGE_SPECS:
        spec = dict(spec)
        function = getattr(skimage.data, spec.pop("function"))
        missing = [p for p in spec.pop("doc_phrases") if p not in (function.__doc__ or "")]
        if missing:
            raise ValueError(f"skimage.data.{function.__name__} docstring no longer mentions {missing}; demo facts "
                             "stale")
        image = downscale(array_to_pil(function()), max_side)
        facts.append(ImageFacts(
            origin=f"scikit-image sample data skimage.data.{function.__name__}()", image=image,
            license="scikit-image sample data, CC0 / no known copyright restrictions (per its docstring)", **spec,
        ))
    return facts


# ----------------------------------------------------------------------------------------- questions


def _open_questions(f: ImageFacts) -> list[QA]:
    qas = [QA("What imaging modality was used?", f.modality, f"This is {_article(f.modality_name)} {f.modality_name}.",
              "open", "modality")]
    if f.body_part:
        qas.append(QA("Which part of the body is shown?", f.body_part, f"The image shows the {f.body_part}.",
                      "open", "organ"))
    if f.plane:
        qas.append(QA("In which plane was this image acquired?", f.plane, f"It is {_article(f.plane)} {f.plane} image.",
                      "open", "plane"))
    if f.view:
        qas.append(QA("What is the projection of this radiograph?", f.view.split(" (")[-1].rstrip(")").lower(),
                      f"It is {_article(f.view)} {f.view} projection.", "open", "view"))
    if f.weighting:
        qas.append(QA("What is the MRI weighting?", f.weighting.lower(), f"It is {f.weighting}-weighted.", "open",
                      "weighting"))
    if f.contrast:
        qas.append(QA("Which contrast agent was given?", f.contrast.lower(),
                      f"The contrast agent recorded for this study is {f.contrast}.", "open", "contrast"))
    if f.exam:
        qas.append(QA("What type of examination is this?", f.exam, f"Examination: {f.exam}.", "open", "exam"))
    if f.finding and f.finding_question:
        qas.append(QA(f.finding_question, f.finding, f.finding_caption.format(f.finding), "open", "finding"))
    return qas


def questions_for(facts: ImageFacts) -> list[QA]:
    """Every question the facts of one image support: the open ones, then the closed ones."""
    noun = facts.modality_noun
    qas = _open_questions(facts) + [
        QA(f"Is this {noun}?", "yes", f"Yes, this is {noun}.", "closed", "modality"),
        QA(f"Is this {OTHER_MODALITY_NOUNS[facts.modality]}?", "no", f"No, this is {noun}.", "closed", "modality"),
    ]
    if facts.contrast:
        qas.append(QA("Was a contrast agent administered?", "yes", f"Yes, {facts.contrast} was given.", "closed",
                      "contrast"))
    if facts.weighting in ("T1", "T2"):
        other = "T2" if facts.weighting == "T1" else "T1"
        qas.append(QA(f"Is this a {other}-weighted image?", "no", f"No, it is {facts.weighting}-weighted.", "closed",
                      "weighting"))
    if facts.plane == "axial":
        qas.append(QA("Is this a sagittal image?", "no", "No, it is an axial image.", "closed", "plane"))
    if facts.normal is not None:
        qas.append(QA("Is this fundus normal?", "yes" if facts.normal else "no",
                      "Yes, the source describes it as a normal eye." if facts.normal
                      else "No, the source describes lesions (microaneurysms).", "closed", "abnormality"))
    return qas


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def caption_for(f: ImageFacts, detailed: bool = False) -> str:
    """A caption made only of recorded facts; the detailed one adds every open answer."""
    head = f"{f.plane.capitalize()} {f.modality_name}" if f.plane else f.modality_name[0].upper() + f.modality_name[1:]
    head += f" of the {f.body_part}" if f.body_part else ""
    answers = {qa.question_type: qa.long_answer for qa in _open_questions(f)}
    kinds = ("exam", "finding", "view", "weighting", "contrast") if detailed else ("exam", "finding")
    return " ".join([head + "."] + [answers[kind] for kind in kinds if kind in answers])


# ------------------------------------------------------------------------------------------- records


def _training_row(facts: ImageFacts, row_id: str, turns: list[tuple[str, str]]) -> dict:
    messages = []
    for i, (question, answer) in enumerate(turns):
        content = [image_block(), text_block(question)] if i == 0 else [text_block(question)]
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": [text_block(answer)]}]
    return {
        "id": row_id, "source": DEMO_SOURCE, "images": [facts.image], "messages": messages,
        "domain": {name: facts.domain == name for name in DOMAINS}, "modality": facts.modality,
        "body_part": facts.body_part,
    }


def _alignment_rows(facts: ImageFacts) -> list[dict]:
    return [
        _training_row(facts, f"demo-align-{facts.key}-{kind}",
                      [(pick_instruction(facts.key, kind), caption_for(facts, detailed=kind == "detailed"))])
        for kind in ("brief", "detailed")
    ]


def _instruct_row(facts: ImageFacts) -> dict:
    """One conversation: a description of the image (its caption, the only place the held-out facts appear), then
    every question that is not held out, open ones first."""
    qas = [qa for qa in questions_for(facts) if qa.question_type not in HELD_OUT_QUESTION_TYPES]
    turns = [(DESCRIBE_REQUEST, caption_for(facts))]
    turns += [(qa.question, qa.long_answer) for qa in sorted(qas, key=lambda qa: qa.answer_type != "open")]
    return _training_row(facts, f"demo-instruct-{facts.key}", turns)


def _eval_rows(facts: ImageFacts) -> list[dict]:
    return [
        {
            "id": f"demo-eval-{facts.key}-{i:02d}", "source": DEMO_SOURCE, "image": facts.image,
            "question": qa.question, "answer": qa.answer, "answer_type": qa.answer_type,
            "question_type": qa.question_type, "options": None, "answer_label": None,
        }
        for i, qa in enumerate(questions_for(facts)) if qa.question_type in HELD_OUT_QUESTION_TYPES
    ]


def build_demo_records(max_side: int = 512, facts: list[ImageFacts] | None = None) -> dict[str, list[dict]]:
    """Plain-Python rows (PIL images) of the splits: `alignment`, `instruct`, `eval`, and the control
    `eval_mismatched_images` (the eval questions and answers, each shown another image of a different modality)."""
    facts = load_demo_facts(max_side) if facts is None else facts
    # each image's swap: the next image in the list (cyclically) whose modality differs
    swaps = [next(g.image for g in facts[i + 1:] + facts[:i] if g.modality != f.modality) for i, f in enumerate(facts)]
    return {
        "alignment": [row for f in facts for row in _alignment_rows(f)],
        "instruct": [_instruct_row(f) for f in facts],
        "eval": [row for f in facts for row in _eval_rows(f)],
        "eval_mismatched_images": [dict(row, image=swap) for f, swap in zip(facts, swaps) for row in _eval_rows(f)],
    }


def _encoded_records(facts: list[ImageFacts]) -> dict[str, list[dict]]:
    """`build_demo_records` with PNG-encoded images, as `datasets` and the writer store them."""
    png = {id(f.image): encode_image(f.image) for f in facts}  # once per image: many rows share one
    records = build_demo_records(facts=facts)
    return {name: [{**row, key: [png[id(im)] for im in row[key]] if key == "images" else png[id(row[key])]}
                   for row in records[name]]
            for name, (key, _, _) in CONFIGS.items()}


def build_demo_splits(max_side: int = 512) -> dict:
    """`{"alignment", "instruct"}` (training schema) and `"eval"` (eval schema) as in-memory `datasets.Dataset`s."""
    from datasets import Dataset

    records = _encoded_records(load_demo_facts(max_side))
    return {name: Dataset.from_list(records[name], features=features)
            for name, (_, features, _) in CONFIGS.items() if name != "eval_mismatched_images"}


def write_demo_dataset(output_dir: str | Path, max_side: int = 512) -> Path:
    """Write the demo set as a Parquet folder (configs alignment/instruct: split train; eval and
    eval_mismatched_images: split test) + card."""
    from .card import write_dataset_card
    from .writer import write_dataset_folder

    output_dir = Path(output_dir)
    facts = load_demo_facts(max_side)
    records = _encoded_records(facts)
    for name, (_, features, split) in CONFIGS.items():
        write_dataset_folder(output_dir, name, split, records[name], features,
                             default=name == "alignment", progress=False)
    write_dataset_card(
        output_dir, pretty_name="hf_medvlm demo set (real DICOM, histology and fundus images)",
        license=DEMO_LICENSE, license_name="mixed-permissive-test-data",
        license_details="Images: " + "; ".join(sorted({f.license for f in facts})) + ".",
        summary=__doc__.strip().split("\n\n")[0], provenance=[f"{f.key}: {f.origin}" for f in facts],
        how_built="`hf_medvlm.data.demo.write_demo_dataset` (questions and answers from DICOM header fields and "
                  "package docstrings; images windowed, MONOCHROME1 inverted, RGB, longest side <= "
                  f"{max_side} px).",
        tags=["medical", "demo"], task_categories=["image-text-to-text", "visual-question-answering"],
        notes=[f"The eval split asks only question types never asked in the instruct split "
               f"({', '.join(HELD_OUT_QUESTION_TYPES)}), about the same images as the training splits; use it to "
               "smoke-test pipelines, not to measure a model.",
               "`eval_mismatched_images` is a control: the eval questions and answers with each image replaced by "
               "one of a different modality. A model whose answers ignore the image scores the same on both."],
    )
    return output_dir
