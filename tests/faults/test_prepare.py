"""`prepare` killed mid-shard, between shard renames (fresh and over an earlier build), and rerun."""

from __future__ import annotations

import json

import pytest

from hf_medvlm.commands.prepare import main as prepare_main
from tests.data.conftest import write_jpeg
from tests.faults.helpers import assert_no_temporaries, fault, kill_at, tree_bytes

pytestmark = [pytest.mark.faults, pytest.mark.integration]

NEW = [f"r{i}" for i in range(60)]
CAPTION = [{"from": "human", "value": "<image>\nDescribe the figure."}, {"from": "gpt", "value": "A chest CT."}]


def _raw(folder, n: int, prefix: str):
    """An alignment release file of `n` records, its images under `folder/images`."""
    for i in range(n):
        write_jpeg(folder / "images" / f"{prefix}{i}.jpg", seed=i)
    raw = folder / f"{prefix}.json"
    raw.write_text(json.dumps([{"id": f"{prefix}{i}", "image": f"{prefix}{i}.jpg", "conversations": CAPTION}
                               for i in range(n)]))
    return raw


def _argv(raw, out):
    return ["llava_med_alignment", "--input_path", str(raw), "--image_root", str(raw.parent / "images"),
            "--output_dir", str(out), "--rows_per_shard", "10"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prepare_inputs")
    raw, earlier = _raw(folder, 60, "r"), _raw(folder, 25, "old")
    whole = folder / "whole"
    assert prepare_main(_argv(raw, whole)) == 0
    return raw, earlier, whole


def assert_loads_whole_or_not_at_all(out, *builds):
    """(a) What `load_dataset` reads from the folder is one whole build (of `builds`, lists of ids) or nothing."""
    import datasets

    for name in (None, "500k"):
        try:
            rows = datasets.load_dataset(str(out), name=name, split="train")
        except Exception:  # noqa: BLE001 - any refusal is the right answer for a cut-off build
            continue
        assert sorted(rows["id"]) in [sorted(ids) for ids in builds], \
            f"load_dataset({out}, name={name}) read part of a build: {sorted(rows['id'])}"


def _rerun_and_compare(raw, out, whole):
    assert prepare_main(_argv(raw, out)) == 0
    assert tree_bytes(out) == tree_bytes(whole)  # (b) the same shards, card and build report, byte for byte
    assert_no_temporaries(out)  # (c)


@pytest.mark.parametrize("point", ["mid_shard", "between_renames"])
def test_prepare_killed_then_rerun(inputs, tmp_path, point):
    raw, _, whole = inputs
    out = tmp_path / "out"
    spec = {"mid_shard": fault("pyarrow.parquet:ParquetWriter.write_table", tmp_path, call=3, when="after"),
            "between_renames": fault("os:replace", tmp_path, match="shard-00002.parquet")}[point]
    kill_at(["prepare", *_argv(raw, out)], spec)
    assert not (out / "build_report.json").exists()  # written after the shards, with the card's body
    assert_loads_whole_or_not_at_all(out, NEW)
    _rerun_and_compare(raw, out, whole)


def test_prepare_over_an_earlier_build_killed_between_renames(inputs, tmp_path):
    """The earlier build's card names `500k/train-*`: while the new shards replace the old ones, that card must not
    make a mixture or a fraction of them load as the config."""
    raw, earlier, whole = inputs
    out = tmp_path / "out"
    assert prepare_main(_argv(earlier, out)) == 0
    kill_at(["prepare", *_argv(raw, out)], fault("os:replace", tmp_path, match="shard-00002.parquet"))
    assert_loads_whole_or_not_at_all(out, NEW, [f"old{i}" for i in range(25)])
    _rerun_and_compare(raw, out, whole)
