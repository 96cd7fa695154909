"""`select score` killed mid-shard and with the card written but its shard not yet moved in; the rerun writes the
uninterrupted run's scores."""

from __future__ import annotations

import random

import pytest

from hf_medvlm.commands.select import main as select_main
from tests.faults.helpers import assert_no_temporaries, fault, kill_at, tree_bytes
from tests.selection.conftest import rated_row

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    import datasets

    from hf_medvlm.testing.tiny_selector import build_tiny_selector

    folder = tmp_path_factory.mktemp("select_faults")
    model, processor = build_tiny_selector(seed=0)
    model.save_pretrained(folder / "selector")
    processor.save_pretrained(folder / "selector")
    rng = random.Random(3)
    datasets.Dataset.from_list([rated_row(rng, rng.choice([1, 5, 9])) for _ in range(24)]).to_parquet(
        str(folder / "rated.parquet"))
    assert select_main(_argv(folder, folder / "whole")) == 0
    return folder


def _argv(folder, out):
    return ["score", "--model_name_or_path", str(folder / "selector"), "--dataset_name", str(folder / "rated.parquet"),
            "--output_dir", str(out), "--batch_size", "8"]


def assert_not_loadable_in_part(out, rows: int):
    import datasets

    try:
        loaded = datasets.load_dataset(str(out), name="scored", split="train")
    except Exception:  # noqa: BLE001 - refusing a cut-off folder is right
        return
    assert len(loaded) == rows and None not in loaded["selection_score"]


@pytest.mark.parametrize("point", ["mid_shard", "card_before_shard"])
def test_select_score_killed_then_rerun(scored, tmp_path, point):
    out = tmp_path / "out"
    spec = {"mid_shard": fault("pyarrow.parquet:ParquetWriter.write_table", tmp_path, when="after"),
            "card_before_shard": fault("os:replace", tmp_path, match="shard-00000.parquet")}[point]
    kill_at(["select", *_argv(scored, out)], spec)
    assert_not_loadable_in_part(out, 24)  # (a)
    assert select_main(_argv(scored, out)) == 0
    assert tree_bytes(out) == tree_bytes(scored / "whole")  # (b) the same scores, byte for byte
    assert_no_temporaries(out)  # (c)
