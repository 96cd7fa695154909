"""issue 17: `select score` / `select pick` on what `generate rate` writes, through the recipes' chain."""

from __future__ import annotations

import json

import pytest
from datasets import load_dataset

from hf_medvlm.cli import main as cli_main
from hf_medvlm.data.examples import write_jpeg


def _ratings_jsonl(folder):
    """data/ratings.jsonl as `generate rate` writes it: one row per Q&A pair, images relative to the file."""
    rows = []
    for i in range(8):
        write_jpeg(folder / "figs" / f"f{i}.jpg", seed=i, size=(32, 32))
        rows.append({"id": f"c{i}-qa0", "images": [f"../figs/f{i}.jpg"], "source": "biomed_vital_generated",
                     "domain": "ct_scan", "modality": "", "body_part": "", "conversation_id": f"c{i}",
                     "turn_index": 0, "context": f"Figure Caption:\ncaption w{i}", "rating": [2, 9, None, 5][i % 4],
                     "rating_raw": "x", "rating_model": "judge",
                     "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"w{i}"}]},
                                  {"role": "assistant", "content": [{"type": "text", "text": "good w1"}]}]})
    path = folder / "data" / "ratings.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.integration
def test_score_then_pick_read_rate_output(tmp_path, repo_root):
    from hf_medvlm.testing.tiny_selector import build_tiny_selector

    model, processor = build_tiny_selector()
    model.save_pretrained(tmp_path / "selector")
    processor.save_pretrained(tmp_path / "selector")
    ratings = _ratings_jsonl(tmp_path)
    scored = tmp_path / "scored"
    # was: AttributeError: 'str' object has no attribute 'convert' (image paths left as strings)
    assert cli_main(["select", "score", "--model_name_or_path", str(tmp_path / "selector"), "--dataset_name",
                     str(ratings), "--output_dir", str(scored), "--save_features", "true", "--max_text_length",
                     "48"]) == 0
    rows = load_dataset(str(scored), name="scored", split="train")
    assert rows["rating"] == [2, 9, None, 5] * 2 and None not in rows["selection_score"]
    picked = tmp_path / "picked"
    assert cli_main(["select", "pick", "--config", str(repo_root / "recipes/biomed-vital/selection/pick_clusters.yaml"),
                     "--dataset_name", str(scored), "--output_dir", str(picked), "--num_clusters", "2"]) == 0
    report = json.loads((picked / "selection_report.json").read_text())
    assert report["counts"] == {"top_10": 1, "top_50": 4, "top_80": 6} and (picked / "precision_f1_at_k.png").is_file()
