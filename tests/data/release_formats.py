"""Raw files in the exact layouts of the nine public releases `hf-medvlm prepare` reads.

Each writer copies one release's file name, field names, field order, value types and quirks, and says in its
docstring what it was checked against (repository + path + commit, or the dataset card) and what could not be
checked. The records' text is made up; only the layout is copied. Images are small random JPEGs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tests.data.conftest import write_jpeg

# LLaVA-Med's `domain` object, keys in the release's order (qa50 file, sha256 48c6b680...).
DOMAIN_KEYS = ("chest_xray", "mri", "ct_scan", "histology", "gross")


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
    images = folder / "images"
    write_jpeg(images / "17506892_F1.jpg", seed=1)
    write_jpeg(images / "29156372_F3.jpg", seed=2)
    records = [
        {"id": "17506892_F1", "image": "17506892_F1.jpg",
         "conversatons": [turn("human", "Summarize the visual content of the image.\n<image>"),
                          turn("gpt", "Axial FLAIR MRI of the brain.")]},
        {"id": "29156372_F3", "image": "29156372_F3.jpg",
         "conversatons": [turn("human", "<image>\nDescribe the image concisely."),
                          turn("gpt", "Chest radiograph, PA view.")]},
    ]
    path = folder / "llava_med_alignment_500k.json"
    path.write_text(json.dumps(records))
    return path


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
    images = folder / "images"
    for i, name in enumerate(("32432162_F1", "27149012_F2", "30123456_F4")):
        write_jpeg(images / f"{name}.jpg", seed=10 + i)
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
    path = folder / "llava_med_instruct_60k_inline_mention.json"
    path.write_text(json.dumps(records, indent=2))
    return path


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
    path = folder / "llava_med_eval_qa50_qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


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
    paths = {"alignment": folder / "PubMedVision_Alignment_VQA.json", "chinese": folder / "PubMedVision_Chinese.json"}
    paths["alignment"].write_text(json.dumps(rows))
    paths["chinese"].write_text(json.dumps(chinese, ensure_ascii=False))
    return paths


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
    images = folder / "images"
    for i, name in enumerate(("28104940_F2", "20041026_fig1", "32432162_F1", "35465023_fig1-2050313X221091670")):
        write_jpeg(images / f"{name}.jpg", seed=40 + i)
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
    path = folder / "BioMed-VITAL-instructions-150K.json"
    path.write_text(json.dumps(records, indent=4))
    return path


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

    def row(qid, phrase_type, question, answer, answer_type, question_type):
        return {"qid": qid, "phrase_type": phrase_type, **base, "question": question, "question_type": question_type,
                "answer": answer, "answer_type": answer_type}

    rows = [row(1, "freeform", "Are regions of the brain infarcted?", "Yes", "CLOSED", "PRES"),
            row(2, "test_freeform", "Is there a fracture?", "No", "CLOSED ", "PRES"),
            row(3, "test_para", "How many lesions are there?", 2, "OPEN", "COUNT"),
            row(4, "para", "Where is the lesion?", "Left frontal lobe", "OPEN", "POS")]
    path = folder / "VQA_RAD Dataset Public.json"
    path.write_text(json.dumps(rows, indent=4))
    return path


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
    path = folder / "train.json"
    path.write_text(json.dumps(rows, ensure_ascii=False))
    return path


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
    table = pa.table({"image": [{"bytes": images[0], "path": None}, {"bytes": images[1], "path": None},
                                {"bytes": images[0], "path": None}],
                      "question": ["is this well-differentiated?", "what is present?", "does this show necrosis?"],
                      "answer": ["yes", "granulomas", "no"]})
    path = folder / "test-00000-of-00003.parquet"
    pq.write_table(table, path)
    return path


def write_pmc_vqa(folder: Path, answer_column: str = "Answer") -> Path:
    """`test_clean.csv` of xmcmic/PMC-VQA.

    Checked against the dataset card (README at 245d3a2 and c08340c): columns `Figure_path` (a file name inside
    `images.zip`), `Question`, `Answer`, `Choice A`..`Choice D` with the letter glued on ("A:Diffuse uptake
    pattern"), `Answer_label` (a letter); the first card spells the answer column `Anwser`, and the authors' own
    loader (xiaoman-zhang/PMC-VQA@1678ec2 `src/MedVInT_TD/Dataset/PMC_QA_Dataset.py`) reads `Anwser` and
    `Caption`. Not checked (the CSVs are not stored here): the exact header of each file (which spelling, whether a
    pandas index column leads), the v2 files' columns.
    """
    write_jpeg(folder / "images" / "PMC1064097_F1.jpg", seed=80)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Figure_path", "Question", answer_column, "Choice A", "Choice B", "Choice C", "Choice D",
                     "Answer_label"])
    writer.writerow(["PMC1064097_F1.jpg", "What is the uptake pattern in the breast?", "Focal uptake pattern",
                     "A:Diffuse uptake pattern", "B:Focal uptake pattern", "C:No uptake pattern",
                     "D:Cannot determine from the information given", "B"])
    writer.writerow(["PMC1064097_F1.jpg", "Which view is shown?", "Axial", "A:Axial", "B:Sagittal", "C:Coronal",
                     "D:Oblique", "A"])
    # not from the release: a row with an empty choice, to show the error path
    writer.writerow(["PMC1064097_F1.jpg", "Which organ?", "Liver", "A:Liver", "B:Spleen", "C:", "D:Kidney", "A"])
    path = folder / "test_clean.csv"
    path.write_text(buffer.getvalue())
    return path
