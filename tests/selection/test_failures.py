"""`select score` exits 1 when too many rows could not be scored (issue 16 item 4); the scored dataset is written
either way, with the unscorable rows kept and a null score."""

import random

import datasets
import pytest

from hf_medvlm.commands.select import main

from .conftest import rated_row


@pytest.mark.integration
def test_select_score_exits_1_above_max_failure_rate(tmp_path, tiny_selector, capsys):
    model, processor = tiny_selector
    model.save_pretrained(tmp_path / "selector")
    processor.save_pretrained(tmp_path / "selector")
    rng = random.Random(0)
    rows = [rated_row(rng, 5) for _ in range(6)] + [rated_row(rng, 5, image=False) for _ in range(2)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "rows.parquet"))
    argv = ["score", "--model_name_or_path", str(tmp_path / "selector"), "--dataset_name",
            str(tmp_path / "rows.parquet"), "--output_dir", str(tmp_path / "scored")]
    assert main(argv) == 1  # 2 of 8 rows have no image
    assert "select score: failed: 2 of 8 rows failed (25%), more than --max_failure_rate 0.1" in (
        capsys.readouterr().err)
    scored = datasets.load_dataset(str(tmp_path / "scored"), name="scored", split="train")
    assert scored["selection_score"].count(None) == 2 and len(scored) == 8
    assert main([*argv, "--max_failure_rate", "0.25"]) == 0
