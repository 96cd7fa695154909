"""Synthetic example records in the exact layouts of the nine public releases `hf-medvlm prepare` reads, plus the
inputs of `fetch-images`, `filter`, `generate` and `select`, so that every documented command can be tried offline.

`write_examples(folder)` (what `hf-medvlm tiny --examples DIR` runs) writes them all in the releases' own folder
layouts; the `write_<source>` functions write one release each and are what the conformance tests
(`tests/data/test_conformance.py`) convert. Each writer copies one release's file name, field names, field order,
value types and quirks, and says in its docstring what it was checked against (repository + path + commit, or the
dataset card) and what could not be checked. The records' text is made up; only the layout is copied. Images are
small random JPEGs.
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from pathlib import Path

__all__ = ["write_examples", "write_jpeg", "DOMAIN_KEYS"]


def write_jpeg(path, seed: int = 0, size=(24, 20)) -> Path:
    """A small real JPEG file (random pixels) at `path`."""
    import numpy as np
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    Image.fromarray(rng.randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="JPEG")
    return path


# LLaVA-Med's `domain` object, keys in the release's order (qa50 file, sha256 48c6b680...).
DOMAIN_KEYS = ("chest_xray", "mri", "ct_scan", "histology", "gross")


def _write_json(path: Path, value, **dumps_kwargs) -> Path:
    if path.suffix == ".jsonl":  # JSON Lines: one record a line
        path.write_text("".join(json.dumps(row) + "\n" for row in value))
    else:
        path.write_text(json.dumps(value, **dumps_kwargs))
    return path


def domain(*true_flags: str) -> dict:
    return {key: key in true_flags for key in DOMAIN_KEYS}


def turn(speaker: str, value) -> dict:
    return {"from": speaker, "value": value}


def write_llava_med_alignment(folder: Path) -> Path:
    """`data/alignment/llava_med_alignment_500k.json` of microsoft/LLaVA-Med.

    Checked against: the v1.0 training code (microsoft/LLaVA-Med@b9a98a7 `llava/train/train.py`, and
    `llava/notebook/visualize_instruction_data.ipynb`, which reads this file and falls back to the misspelt key
    `conversatons`), and a public loader of the file quoting a record: `"conversatons": [{"from": "human", "value":
    "Summarize the visual content of the image.\\n<image>"}, {"from": "gpt", "value": "<caption>"}]` with `id` and
    `image`. The notebook counts 500,000 records with one instruction line each (27 distinct instructions).
    Not checked (the file is git-LFS at HEAD d406e3f and 341 MB): whether records also carry `domain`, and whether
    every record uses the misspelt key.
    """
    for i, name in enumerate(("17506892_F1", "29156372_F3")):
        write_jpeg(folder / "images" / f"{name}.jpg", seed=1 + i)
    records = [
        {"id": "17506892_F1", "image": "17506892_F1.jpg",
         "conversatons": [turn("human", "Summarize the visual content of the image.\n<image>"),
                          turn("gpt", "Axial FLAIR MRI of the brain.")]},
        {"id": "29156372_F3", "image": "29156372_F3.jpg",
         "conversatons": [turn("human", "<image>\nDescribe the image concisely."),
                          turn("gpt", "Chest radiograph, PA view.")]},
    ]
    return _write_json(folder / "llava_med_alignment_500k.json", records)


def write_llava_med_instruct(folder: Path) -> Path:
    """`data/instruct/llava_med_instruct_{10k,60k,60k_inline_mention}.json` of microsoft/LLaVA-Med.

    Checked against: the generator of these files, microsoft/LLaVA-Med@b9a98a7 (tag v1.0.0)
    `llava/instruct/instruct_postprocess.py` (`{"id": pair_id, "image": pair_id + ".jpg", "domain": <5 flags>,
    "conversations": [{from, value}, ...]}`, `<image>` randomly appended as "\\n<image>" or prepended as
    "<image>\\n" to the first question, turn pairs whose answer mentions the caption dropped, which can drop the
    turn carrying `<image>`), the README's statement that the released 60K-IM file "is generated the same way",
    and the notebook that reads the files with the `conversations` key. Not checked (git-LFS, 19-85 MB): how many
    released records lost their `<image>` turn.
    """
    for i, name in enumerate(("32432162_F1", "27149012_F2", "30123456_F4")):
        write_jpeg(folder / "images" / f"{name}.jpg", seed=10 + i)
    records = [
        {"id": "32432162_F1", "image": "32432162_F1.jpg", "domain": domain("ct_scan"),
         "conversations": [turn("human", "What type of imaging is used here?\n<image>"),
                           turn("gpt", "A contrast-enhanced CT scan."),
                           turn("human", "Which organ is affected?"), turn("gpt", "The liver.")]},
        {"id": "27149012_F2", "image": "27149012_F2.jpg", "domain": domain("histology", "gross"),
         "conversations": [turn("human", "<image>\nWhat stain was used?"), turn("gpt", "Hematoxylin and eosin.")]},
        # the first turn pair (with `<image>`) dropped by the postprocessing's caption filter
        {"id": "30123456_F4", "image": "30123456_F4.jpg", "domain": domain("mri"),
         "conversations": [turn("human", "Is there contrast enhancement?"), turn("gpt", "Yes, a ring.")]},
    ]
    return _write_json(folder / "llava_med_instruct_60k_inline_mention.json", records, indent=2)


QA50_MIX = [  # (true flags, type): the release's 7 flag combinations, incl. both two-flag ones
    (("histology", "gross"), "conversation"),
    (("histology",), "conversation"),
    (("ct_scan",), "conversation"),
    (("mri",), "detailed_description"),
    (("gross",), "conversation"),
    (("chest_xray",), "detailed_description"),
    (("chest_xray", "ct_scan"), "conversation"),
    (("ct_scan",), "detailed_description"),
]


def qa50_record(i: int, flags: tuple[str, ...], kind: str, *, mentions: bool = True) -> dict:
    """One line of `llava_med_eval_qa50_qa.jsonl`, keys in the release's order and with its value types."""
    pair_id = f"1806389{i}_F{i % 4 + 1}"
    return {
        "question_id": i, "image": f"{pair_id}.jpg", "pair_id": pair_id,
        "text": f"What does panel {i} show?\n<image>", "gpt4_answer": f"Reference answer {i}.",
        "fig_caption": f"Caption of figure {i} (H & E stain, \u00d7100).",
        "in_text_mention": [{"tokens": f"Cells were not found in the vicinity ( Fig. {i} ) .",
                             "entities": [{"type": "figure", "entity_id": str(i), "start_tok": 9, "end_tok": 11}]}]
        if mentions else None,
        "domain": domain(*flags), "type": kind, "fig_label": f"Fig. {i}",
    }


def write_llava_med_qa50(folder: Path, *, with_images: bool = False) -> Path:
    """`data/eval/llava_med_eval_qa50_qa.jsonl` of microsoft/LLaVA-Med.

    Checked against the real file: its git-LFS pointer at microsoft/LLaVA-Med@d406e3f (sha256 48c6b680..., 262,328
    bytes) matches byte for byte the copy committed in Im-Wali/LLaVA-Med-RAG@7f1a6c3
    `data/eval/llava_med_eval_qa50_qa.jsonl`. Its 193 lines all have the keys `question_id` (int), `image`
    (`<pair_id>.jpg`), `pair_id`, `text` (ends in "\\n<image>"), `gpt4_answer`, `fig_caption`, `in_text_mention`
    (a list of `{"tokens": str, "entities": [{"type", "entity_id": str, "start_tok": int, "end_tok": int}]}`, or
    null in 14 rows), `domain` (5 booleans in the order chest_xray, mri, ct_scan, histology, gross; 8 rows have two
    true flags: histology+gross and chest_xray+ct_scan), `type` (conversation 143 / detailed_description 50),
    `fig_label`, in that order. By first true flag in the order chest_xray, mri, histology, gross, ct_scan
    (`llava/eval/summarize_gpt_review.py` at d406e3f) the file holds 37 / 38 / 44 / 34 / 40 questions. The images
    are not in the release (`llava_med_image_urls.jsonl` lacks them).
    """
    records = [qa50_record(i, flags, kind, mentions=i != 4) for i, (flags, kind) in enumerate(QA50_MIX)]
    if with_images:
        for record in records:
            write_jpeg(folder / "images" / record["image"], seed=record["question_id"])
    return _write_json(folder / "llava_med_eval_qa50_qa.jsonl", records)


def write_pubmedvision(folder: Path) -> dict[str, Path]:
    """`PubMedVision_Alignment_VQA.json` and `PubMedVision_Chinese.json` of FreedomIntelligence/PubMedVision.

    Checked against: the dataset card (configs `PubMedVision_Alignment_VQA` / `PubMedVision_InstructionTuning_VQA`,
    images unzipped with `unzip -j images_$i.zip -d images/`), the single-image re-export's card
    (mtybilly/PubMedVision-Alignment-VQA: ids `Alignment_VQA_<n>`, string `modality` / `body_part`, ~22% multi-image
    rows, `pmc_9_0.jpg` referenced but absent from the zips), HuatuoGPT-Vision's trainer (xk-huang/HuatuoGPT-Vision
    @6e20a3b `train_vl.py`, a fork keeping the upstream commit: `image` is a list, `conversations` use
    `from`/`value` with human/gpt, no `<image>` in the text, so it prepends one per image), and public loaders of
    the Chinese file (`Alignment_VQA_conversations` / `Instruction-Tuning_VQA_conversations` instead of
    `conversations`). Not checked (the JSON files are 420-722 MB): the Chinese file's other keys and whether any
    `image` is a bare string.
    """
    for n in range(3):
        write_jpeg(folder / "images" / f"pmc_1_{n}.jpg", seed=20 + n)
    write_jpeg(folder / "images" / "pmc_2_0.jpg", seed=30)
    describe = [turn("human", "What is depicted in the images?"), turn("gpt", "Three CT slices of the chest.")]
    rows = [
        {"id": "Alignment_VQA_1", "image": [f"images/pmc_1_{n}.jpg" for n in range(3)], "body_part": "Chest",
         "modality": "Computed Tomography", "conversations": describe},
        {"id": "Alignment_VQA_2", "image": ["images/pmc_2_0.jpg"], "body_part": "Cell",
         "modality": "Microscopy Images",
         "conversations": [turn("human", "Describe the image."), turn("gpt", "Stained tissue.")]},
        {"id": "Alignment_VQA_9", "image": ["images/pmc_9_0.jpg"], "body_part": "Brain", "modality": "MRI",
         "conversations": describe},
    ]
    chinese = [{"id": "Chinese_1", "image": ["images/pmc_2_0.jpg"], "body_part": "Cell",
                "modality": "Microscopy Images",
                "Alignment_VQA_conversations": [turn("human", "图中显示什么？"), turn("gpt", "染色的组织。")],
                "Instruction-Tuning_VQA_conversations": [turn("human", "这是什么检查？"), turn("gpt", "显微镜检查。")]}]
    return {"alignment": _write_json(folder / "PubMedVision_Alignment_VQA.json", rows),
            "chinese": _write_json(folder / "PubMedVision_Chinese.json", chinese, ensure_ascii=False)}


def write_biomed_vital(folder: Path) -> Path:
    """`BioMed-VITAL-instructions-150K.json` of mao1207/BioMed-VITAL-instructions.

    Checked against: the dataset card's `metadata.yaml` (fields `id`, `image`, `domain`, `conversations`; 150K = the
    80K selected generated records + LLaVA-Med's 10K and 60K), the generator mao1207/BioMed-VITAL@f6ccf75
    `generate/instructions_generation.py` (`{"id": <int counter>, "image": pair_id + ".jpg", "domain":
    content['domain'], "conversations": [...]}`, turns parsed from "User:"/"Assistant:" lines with no `<image>`
    marker), and its clinician demonstrations `generate/doctor_few_shot_examples.py` (58 records, integer ids,
    the image under `imgs`, no `<image>` markers; ids 34 and 49 have two answers in a row). The LLaVA-Med part
    keeps LLaVA-Med's layout (string ids, `<image>` markers). Not checked (the files are 127-463 MB on the Hub,
    unreachable here): the released records themselves, e.g. whether any kept the `imgs` key.
    """
    for i, name in enumerate(("28104940_F2", "20041026_fig1", "32432162_F1", "35465023_fig1-2050313X221091670")):
        write_jpeg(folder / "images" / f"{name}.jpg", seed=40 + i)
    generated = [turn("human", "What modality is used to take this image?"),
                 turn("gpt", "Computed tomography."),
                 turn("human", "Is there a midline shift?"), turn("gpt", "Yes, to the left.")]
    records = [
        {"id": 1, "image": "28104940_F2.jpg", "domain": domain("ct_scan"), "conversations": generated},
        {"id": 2, "imgs": "20041026_fig1.jpg", "domain": domain("mri"), "conversations": generated},
        {"id": "32432162_F1", "image": "32432162_F1.jpg", "domain": domain("ct_scan"),
         "conversations": [turn("human", "<image>\nWhat is shown?"), turn("gpt", "A CT of the abdomen.")]},
        {"id": 4, "image": "35465023_fig1-2050313X221091670.jpg", "domain": domain("chest_xray"),
         "conversations": generated + [turn("gpt", "The shift measures 6 mm.")]},
        {"id": 5, "image": "40000000_F9.jpg", "domain": domain("gross"), "conversations": generated},  # not fetched
    ]
    return _write_json(folder / "BioMed-VITAL-instructions-150K.json", records, indent=4)


def write_vqa_rad(folder: Path) -> Path:
    """`VQA_RAD Dataset Public.json` from the VQA-RAD OSF archive (osf.io/89kps).

    Checked against: the Hub copy's build script (flaviagiammarino/vqa-rad `scripts/processing.py`: splits by
    `phrase_type` in {freeform, para} / {test_freeform, test_para}, columns `image_name`, `question`, `answer`, which
    it passes through `str()`), and public loaders listing the file's keys `qid, phrase_type, qid_linked_id,
    image_case_url, image_name, image_organ, evaluation, question, question_rephrase, question_relation,
    question_frame, question_type, answer, answer_type` ("NULL" strings for absent rephrasings). Not checked (the
    OSF archive is not stored here): the value types of `qid`, whether answers are ever JSON numbers and whether
    `answer_type` values carry trailing spaces; the fixture includes both, which the converter handles.
    """
    write_jpeg(folder / "VQA_RAD Image Folder" / "synpic54610.jpg", seed=50)
    base = {"qid_linked_id": "03f451ca-de62-4617-9679-e836026a7642",
            "image_case_url": "https://medpix.nlm.nih.gov/case?id=48e1dd0e", "image_name": "synpic54610.jpg",
            "image_organ": "HEAD", "evaluation": "not evaluated", "question_rephrase": "NULL",
            "question_relation": "NULL", "question_frame": "NULL"}
    rows = [{"qid": qid, "phrase_type": phrase_type, **base, "question": question, "question_type": question_type,
             "answer": answer, "answer_type": answer_type}
            for qid, phrase_type, question, answer, answer_type, question_type in (
                (1, "freeform", "Are regions of the brain infarcted?", "Yes", "CLOSED", "PRES"),
                (2, "test_freeform", "Is there a fracture?", "No", "CLOSED ", "PRES"),
                (3, "test_para", "How many lesions are there?", 2, "OPEN", "COUNT"),
                (4, "para", "Where is the lesion?", "Left frontal lobe", "OPEN", "POS"))]
    return _write_json(folder / "VQA_RAD Dataset Public.json", rows, indent=4)


def write_slake(folder: Path) -> Path:
    """`Slake1.0/train.json` (same layout in `validate.json` and `test.json`) of the SLAKE release.

    Checked against the real files as committed in xiaoman-zhang/PMC-VQA@97358cd `Slake1.0/{train,validate,test}.json`
    (English rows 4,919 / 1,053 / 1,061, the split sizes LLaVA-Med's v1.0 notebook reports): keys `img_id` (int),
    `img_name` ("xmlab<N>/source.jpg", under `imgs/`), `question`, `answer` (always str), `q_lang` ("en"/"zh"),
    `location`, `modality`, `answer_type` ("OPEN"/"CLOSED"), `base_type` ("vqa"/"kvqa"), `content_type`, `triple`
    (3 strings), `qid` (int); key order varies (`content_type` after `qid` in ~23% of rows); train qid 1622
    (English) has an empty answer.
    """
    write_jpeg(folder / "imgs" / "xmlab102" / "source.jpg", seed=60)
    write_jpeg(folder / "imgs" / "xmlab281" / "source.jpg", seed=61)
    rows = [
        {"img_id": 102, "img_name": "xmlab102/source.jpg", "question": "What modality is used to take this image?",
         "answer": "CT", "q_lang": "en", "location": "Lung", "modality": "CT", "answer_type": "OPEN",
         "base_type": "vqa", "triple": ["vhead", "_", "_"], "qid": 11934, "content_type": "Modality"},
        {"img_id": 102, "img_name": "xmlab102/source.jpg", "question": "图像中的主要器官是什么？", "answer": "肺",
         "q_lang": "zh", "location": "Lung", "modality": "CT", "answer_type": "OPEN", "base_type": "vqa",
         "content_type": "Organ", "triple": ["vhead", "_", "_"], "qid": 11935},
        {"img_id": 102, "img_name": "xmlab102/source.jpg", "question": "What is the effect of the main organ?",
         "answer": "Breathe", "q_lang": "en", "location": "Lung", "modality": "CT", "answer_type": "OPEN",
         "base_type": "kvqa", "content_type": "KG", "triple": ["vhead", "effect", "ktail"], "qid": 11936},
        {"img_id": 102, "img_name": "xmlab102/source.jpg", "question": "Does the picture contain lung?",
         "answer": "Yes", "q_lang": "en", "location": "Lung", "modality": "CT", "answer_type": "CLOSED",
         "base_type": "vqa", "content_type": "Organ", "triple": ["vhead", "_", "_"], "qid": 11937},
        {"img_id": 281, "img_name": "xmlab281/source.jpg", "question": "Does the picture contain liver?",
         "answer": "", "q_lang": "en", "location": "Chest_lung", "modality": "CT", "answer_type": "OPEN",
         "base_type": "vqa", "content_type": "Organ", "triple": ["vhead", "_", "_"], "qid": 1622},
    ]
    return _write_json(folder / "train.json", rows, ensure_ascii=False)


def write_path_vqa(folder: Path) -> Path:
    """`data/test-00000-of-00003.parquet` of flaviagiammarino/path-vqa (the Hub copy of PathVQA).

    Checked against the dataset card's `dataset_info` (features `image` (Image), `question`, `answer`; splits
    train 19,654 / validation 6,259 / test 6,719; answers lowercased; closed = yes/no). Not checked (the parquet
    files are not stored here): what the Image struct's `path` holds (None here) and the shard names. The original
    PathVQA release (pickled `qas/*.pkl`) is not read: unpickling a downloaded file can run code.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [write_jpeg(folder / f"img{i}.jpg", seed=70 + i).read_bytes() for i in range(2)]
    table = pa.table({"image": [{"bytes": images[i], "path": None} for i in (0, 1, 0)],
                      "question": ["is this well-differentiated?", "what is present?", "does this show necrosis?"],
                      "answer": ["yes", "granulomas", "no"]})
    path = folder / "test-00000-of-00003.parquet"
    pq.write_table(table, path)
    return path


def write_pmc_vqa(folder: Path, answer_column: str = "Answer", *, with_bad_row: bool = True) -> Path:
    """`test_clean.csv` of xmcmic/PMC-VQA.

    Checked against the dataset card (README at 245d3a2 and c08340c): columns `Figure_path` (a file name inside
    `images.zip`), `Question`, `Answer`, `Choice A`..`Choice D` with the letter glued on ("A:Diffuse uptake
    pattern"), `Answer_label` (a letter); the first card spells the answer column `Anwser`, and the authors' own
    loader (xiaoman-zhang/PMC-VQA@1678ec2 `src/MedVInT_TD/Dataset/PMC_QA_Dataset.py`) reads `Anwser` and
    `Caption`. Not checked (the CSVs are not stored here): the exact header of each file (which spelling, whether a
    pandas index column leads), the v2 files' columns.
    """
    write_jpeg(folder / "images" / "PMC1064097_F1.jpg", seed=80)
    rows = [["Figure_path", "Question", answer_column, "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"],
            ["PMC1064097_F1.jpg", "What is the uptake pattern in the breast?", "Focal uptake pattern",
             "A:Diffuse uptake pattern", "B:Focal uptake pattern", "C:No uptake pattern",
             "D:Cannot determine from the information given", "B"],
            ["PMC1064097_F1.jpg", "Which view is shown?", "Axial", "A:Axial", "B:Sagittal", "C:Coronal", "D:Oblique",
             "A"]]
    if with_bad_row:  # not from the release: a row with an empty choice, to show the error path
        rows.append(["PMC1064097_F1.jpg", "Which organ?", "Liver", "A:Liver", "B:Spleen", "C:", "D:Kidney", "A"])
    path = folder / "test_clean.csv"
    with path.open("w", newline="") as file:
        csv.writer(file).writerows(rows)
    return path


# ------------------------------------------------------------------------------- everything, for `hf-medvlm tiny`

PMC_URL = "http://127.0.0.1:8766"  # where the walkthroughs serve examples/pmc_mirror (python -m http.server)

# Inputs of `filter` / `generate` (figure records). Captions name at least 5 terms of the packaged medical lexicon,
# except the ones `filter pubmedvision` is meant to drop: too few terms, an image under 336 px, a near-duplicate.
FIGURES = [  # id, caption, mentions, domain, image sizes
    ("34160000_F1", "Axial contrast-enhanced computed tomography of the abdomen shows a hypodense hepatic abscess "
     "with peripheral enhancement and ascites.", ["The abscess (Figure 1) was drained under ultrasound guidance."],
     "ct_scan", [384]),
    ("34160000_F2", "Posteroanterior chest radiograph shows cardiomegaly, bilateral pleural effusion and pulmonary "
     "edema in the lung bases.", ["Heart failure was treated with diuretics (Figure 2)."], "chest_xray", [384]),
    ("34160001_F1", "Axial T2-weighted magnetic resonance imaging of the brain shows a hyperintense lesion in the "
     "left temporal lobe with surrounding edema.", ["A biopsy confirmed glioma (Fig. 1)."], "mri", [384, 400]),
    ("34160002_F3", "Hematoxylin and eosin histology of a lymph node biopsy shows metastatic adenocarcinoma with "
     "necrosis and inflammation.", ["Nodal metastases were found in 3 of 12 nodes (Figure 3)."], "histology", [384]),
    ("34160003_F2", "Gross specimen of a resected kidney shows a large renal carcinoma with hemorrhage, necrosis "
     "and a cyst.", [], "gross", [384]),
    ("34160004_F1", "Coronal computed tomography of the chest shows a spiculated pulmonary nodule in the right "
     "lung with calcification and lymph node enlargement.", ["See Figure 1 for the nodule."], "ct_scan", [384]),
    ("34160005_F4", "Photograph of the study team at the annual meeting.", [], "", [384]),
    ("34160006_F2", "Axial computed tomography of the liver shows a hypodense lesion with rim enhancement, ascites "
     "and a dilated bile duct in the abdomen.", [], "ct_scan", [200]),
    ("34160007_F1", "Axial contrast-enhanced computed tomography of the abdomen shows a hypodense hepatic abscess "
     "with peripheral enhancement and ascites.", [], "ct_scan", [384]),
]

DEMONSTRATIONS = [  # modality, context, response: stand-ins for the clinician-selected demonstrations
    ("ct_scan", "Figure Caption:\nFigure 2: Axial CT of the abdomen shows a hypodense splenic lesion.",
     "User: What imaging modality is this?\nAssistant: An axial computed tomography image of the abdomen.\n"
     "User: What is the main finding?\nAssistant: A hypodense lesion in the spleen."),
    ("chest_xray", "Figure Caption:\nFigure 1: Chest radiograph with a right pleural effusion.",
     "User: Which view is this radiograph?\nAssistant: A frontal chest radiograph.\n"
     "User: Is there fluid in the pleural space?\nAssistant: Yes, a right-sided pleural effusion."),
    ("mri", "Figure Caption:\nFigure 3: T1-weighted MRI of the knee shows a meniscal tear.",
     "User: Which joint is imaged?\nAssistant: The knee, on a T1-weighted magnetic resonance image.\n"
     "User: What abnormality is seen?\nAssistant: A tear of the meniscus."),
    ("histology", "Figure Caption:\nFigure 4: H&E stain of a colon biopsy shows adenocarcinoma.",
     "User: What stain was used?\nAssistant: Hematoxylin and eosin.\n"
     "User: What does the tissue show?\nAssistant: Glands of an invasive adenocarcinoma."),
    ("gross", "Figure Caption:\nFigure 5: Resected gallbladder containing stones.",
     "User: What organ is shown?\nAssistant: A resected gallbladder.\n"
     "User: What does it contain?\nAssistant: Several gallstones."),
]


def write_scan(path: Path, seed: int, size: int = 48) -> Path:
    """A grey, scan-like picture (a bright disc on a dark noisy background) at `path`."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.RandomState(seed)
    image = Image.fromarray(rng.randint(0, 40, (size, size), dtype=np.uint8)).convert("RGB")
    margin = size // 8
    ImageDraw.Draw(image).ellipse((margin, margin, size - margin, size - margin), fill=(150 + seed % 60,) * 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _figure_images(folder: Path) -> None:
    for fig_id, _, _, _, sizes in FIGURES:
        for k, size in enumerate(sizes):  # crc32: a seed stable across runs, unlike `hash`
            seed = zlib.crc32(f"{fig_id}:{k}".encode()) % (2**31)
            write_scan(folder / "figures" / f"{fig_id}_{k}.jpg", seed=seed, size=size)


def write_figure_records(folder: Path) -> Path:
    """`figures.jsonl`: the figure-record input of `filter pubmedvision` and `generate` (docs/data_pipelines.md),
    with its images under `figures/`. Our own format (not a release): id, images, caption, mentions, fig_label,
    domain."""
    _figure_images(folder)
    lines = [{"id": fig_id, "images": [f"figures/{fig_id}_{k}.jpg" for k in range(len(sizes))], "caption": caption,
              "mentions": mentions, "fig_label": f"Figure {fig_id[-1]}", "domain": domain}
             for fig_id, caption, mentions, domain, sizes in FIGURES]
    return _write_json(folder / "figures.jsonl", lines)


def write_classifier_labels(folder: Path) -> Path:
    """`labelled.jsonl` for `filter train-classifier`: `{"image", "label"}` (1 medical, 0 not), images in `labelled/`:
    scan-like pictures and bar charts."""
    import numpy as np
    from PIL import Image, ImageDraw

    rows = []
    for i in range(8):
        medical, path = i % 2 == 0, folder / "labelled" / f"{'scan' if i % 2 == 0 else 'chart'}_{i}.png"
        if medical:
            write_scan(path, seed=i)
        else:  # a white chart with coloured bars
            rng, image = np.random.RandomState(i), Image.new("RGB", (48, 48), "white")
            for bar in range(4):
                height = int(rng.randint(10, 40))
                ImageDraw.Draw(image).rectangle((4 + 11 * bar, 46 - height, 12 + 11 * bar, 46),
                                                fill=tuple(int(c) for c in rng.randint(0, 255, 3)))
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
        rows.append({"image": path.relative_to(folder).as_posix(), "label": int(medical)})
    return _write_json(folder / "labelled.jsonl", rows)


def write_demonstrations(folder: Path) -> Path:
    """`demos.jsonl` for `generate biomed-vital --demonstrations`: `{"context", "response", "modality"}`, one per
    modality, standing in for the clinician-selected ones (BioMed-VITAL released 58; see docs/data_pipelines.md)."""
    return _write_json(folder / "demos.jsonl",
                       ({"context": c, "response": r, "modality": m} for m, c, r in DEMONSTRATIONS))


def write_clinician_pairs(folder: Path) -> list[Path]:
    """`clinician_pairs.jsonl` and `clinician_test_pairs.jsonl` for `select train --human_pairs / --human_test_pairs`:
    preference pairs in the pair schema (docs/selection.md), image paths relative to the file. BioMed-VITAL released
    no clinician annotations; these are made up: the preferred answer names the caption's finding, the other does
    not."""
    _figure_images(folder)
    rows = []
    for i, (fig_id, caption, _, _, _) in enumerate(FIGURES):
        good, bad = caption.split(" shows ")[-1].rstrip(".").capitalize() + ".", "It is an image."
        answers = (good, bad) if i % 2 == 0 else (bad, good)
        candidate = {"image": f"figures/{fig_id}_0.jpg", "caption": caption, "question": "What does the image show?",
                     "rating": None}
        rows.append({"id": f"clinician-{i}", "source": "human", "label": i % 2,
                     **{f"{k}_{side}": v for side, answer in zip("ab", answers)
                        for k, v in {**candidate, "answer": answer}.items()}})
    paths = [folder / "clinician_pairs.jsonl", folder / "clinician_test_pairs.jsonl"]
    return [_write_json(path, part) for path, part in zip(paths, (rows[:6], rows[6:]))]


def _write_pmc_mirror(folder: Path, images: dict[str, bytes], pmc_url: str) -> Path:
    """PMC OA tarballs holding the figures (`pmc_mirror/pub/pmc/oa_package/xx/yy/PMC<n>.tar.gz`, member
    `PMC<n>/<figure>.jpg`) and `llava_med_image_urls.jsonl` pointing at them under `pmc_url`: the URL list's layout
    (`pmc_tar_url`, `image_file_path`, `pair_id`) with a loopback host instead of the NCBI server."""
    import tarfile

    lines = []
    for n, (pair_id, data) in enumerate(sorted(images.items())):
        pmcid, prefix = f"PMC{1000000 + n}", f"oa_package/{n % 7:02x}/{n % 5:02x}"
        tar_path = folder / "pmc_mirror" / "pub" / "pmc" / prefix / f"{pmcid}.tar.gz"
        tar_path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar_path, "w:gz") as archive:
            info = tarfile.TarInfo(f"{pmcid}/{pair_id}.jpg")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        lines.append({"pmc_tar_url": f"{pmc_url.rstrip('/')}/pub/pmc/{prefix}/{pmcid}.tar.gz",
                      "image_file_path": f"{pmcid}/{pair_id}.jpg", "pair_id": pair_id})
    return _write_json(folder / "llava_med_image_urls.jsonl", lines)


def _pmc_sources(folder: Path, pmc_url: str) -> list[Path]:
    """LLaVA-Med and BioMed-VITAL name PMC figures by pair id: their images go into the PMC mirror, not beside them."""
    import tempfile

    raws, images = [], {}
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        for name, writer in (("alignment", write_llava_med_alignment), ("instruct", write_llava_med_instruct),
                             ("vital", write_biomed_vital)):
            raw = writer(Path(scratch) / name)
            raws.append(raw.replace(folder / raw.name))
            for image in sorted((Path(scratch) / name / "images").glob("*.jpg")):
                images.setdefault(image.stem, image.read_bytes())
    generated = [r for r in json.loads(raws[-1].read_text()) if isinstance(r["id"], int)]  # same layout
    sixty_k = _write_json(folder / "BioMed-VITAL-instructions-60K.json", generated, indent=4)
    return [*raws, sixty_k, _write_pmc_mirror(folder, images, pmc_url)]


def _benchmarks(folder: Path) -> list[Path]:
    written = [write_vqa_rad(folder)]
    slake = write_slake(folder / "Slake1.0")  # train.json keeps the release's empty answer (qid 1622)
    rows = [row for row in json.loads(slake.read_text()) if row["answer"]]
    written += [slake, _write_json(folder / "Slake1.0" / "test.json", rows, ensure_ascii=False)]
    test = write_path_vqa(folder / "path-vqa" / "data")
    for leftover in test.parent.glob("*.jpg"):  # the writer's image files are embedded in the parquet
        leftover.unlink()
    train = test.with_name("train-00000-of-00003.parquet")
    train.write_bytes(test.read_bytes())
    written += [test, train, write_pmc_vqa(folder / "PMC-VQA", with_bad_row=False)]
    return written


def write_examples(folder: str | Path, pmc_url: str = PMC_URL) -> list[Path]:
    """Write every example (release files in their layouts, pipeline inputs, the PMC mirror) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [*_pmc_sources(folder, pmc_url), write_llava_med_qa50(folder, with_images=True)]
    (folder / "images").replace(folder / "qa50_images")  # the qa50 images are not public
    pubmedvision = write_pubmedvision(folder / "PubMedVision")
    rows = [{**row, "id": row["id"].replace("Alignment_VQA", "InstructionTuning_VQA")}  # same layout; ids not checked
            for row in json.loads(pubmedvision["alignment"].read_text())]
    instruct = _write_json(folder / "PubMedVision" / "PubMedVision_InstructionTuning_VQA.json", rows)
    written += [*pubmedvision.values(), instruct, *_benchmarks(folder)]
    written += [write_figure_records(folder), write_classifier_labels(folder), write_demonstrations(folder),
                *write_clinician_pairs(folder)]
    (folder / "README.md").write_text(EXAMPLES_README.format(pmc_url=pmc_url))
    return written


EXAMPLES_README = """# hf_medvlm examples (written by `hf-medvlm tiny --examples`)

Synthetic records in the layouts of the public releases (made-up text, random images), for trying every documented
command offline; docs/walkthroughs.md runs them. What each layout was checked against: `hf_medvlm/data/examples.py`.

| file | release / use | command |
|---|---|---|
| `llava_med_image_urls.jsonl`, `pmc_mirror/` | LLaVA-Med's PMC URL list, pointing at {pmc_url} | `fetch-images` (serve `pmc_mirror/` there) |
| `llava_med_alignment_500k.json`, `llava_med_instruct_60k_inline_mention.json` | microsoft/LLaVA-Med | `prepare llava_med_alignment`, `prepare llava_med_instruct` |
| `llava_med_eval_qa50_qa.jsonl`, `qa50_images/` | LLaVA-Med qa50 (its images are not public: these stand in for your copy) | `prepare llava_med_qa50` |
| `BioMed-VITAL-instructions-150K.json`, `-60K.json` | mao1207/BioMed-VITAL-instructions | `prepare biomed_vital` |
| `PubMedVision/` | FreedomIntelligence/PubMedVision | `prepare pubmedvision` |
| `VQA_RAD Dataset Public.json`, `VQA_RAD Image Folder/` | VQA-RAD (OSF) | `prepare vqa_rad` |
| `Slake1.0/` | SLAKE | `prepare slake` |
| `path-vqa/data/` | flaviagiammarino/path-vqa | `prepare path_vqa` |
| `PMC-VQA/` | xmcmic/PMC-VQA | `prepare pmc_vqa` |
| `figures.jsonl`, `figures/` | figure records | `filter pubmedvision`, `generate ...` |
| `labelled.jsonl`, `labelled/` | medical / non-medical images | `filter train-classifier` |
| `demos.jsonl` | clinician demonstrations (stand-ins) | `generate biomed-vital --demonstrations` |
| `clinician_pairs.jsonl`, `clinician_test_pairs.jsonl` | clinician preference pairs (stand-ins) | `select train --human_pairs`, `--human_test_pairs` |
"""
