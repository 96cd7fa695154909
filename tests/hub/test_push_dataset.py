"""Dataset publishing: several subsets with an Image column, loadable (normal and streaming) from the Hub."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset, Features, Image, Value, load_dataset
from huggingface_hub import HfApi

from hf_medvlm.hub import push_dataset_folder

from ..conftest import make_rgb_image

FEATURES = Features({"id": Value("string"), "image": Image(), "question": Value("string")})

CARD = """---
license: {license}
configs:
- config_name: 10k
  default: true
  data_files:
  - split: train
    path: 10k/train-*
- config_name: 60k
  data_files:
  - split: train
    path: 60k/train-*
---

# Test set
"""


def _subset(name: str, n: int) -> Dataset:
    rows = {"id": [f"{name}-{i}" for i in range(n)], "question": [f"What is in image {i}?" for i in range(n)],
            "image": [make_rgb_image(24 + i, 20, seed=hash(name) % 1000 + i) for i in range(n)]}
    return Dataset.from_dict(rows, features=FEATURES)


def _write_folder(folder, shards: dict[str, int], license: str = "cc-by-4.0"):
    """A Parquet folder in the Hub layout, written with datasets' own to_parquet (stand-in for the data writer)."""
    subsets = {"10k": _subset("10k", 6), "60k": _subset("60k", 4)}
    for name, ds in subsets.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        n = shards.get(name, 1)
        for i in range(n):
            ds.shard(n, i, contiguous=True).to_parquet(folder / name / f"train-{i:05d}-of-{n:05d}.parquet")
    (folder / "README.md").write_text(CARD.format(license=license))
    return subsets


def _rows(ds):
    return [(r["id"], r["question"], np.asarray(r["image"].convert("RGB")).tobytes()) for r in ds]


@pytest.mark.integration
def test_two_subsets_with_images_round_trip_normal_and_streaming(hub_server, repo_name, tmp_path):
    subsets = _write_folder(tmp_path / "data", {"10k": 2})
    repo = repo_name("dataset")
    push_dataset_folder(tmp_path / "data", repo)
    for name, expected in subsets.items():
        loaded = load_dataset(repo, name=name, split="train")
        assert loaded.features["image"] == Image()
        assert _rows(loaded) == _rows(expected)
        streamed = load_dataset(repo, name=name, split="train", streaming=True)
        assert _rows(streamed) == _rows(expected)
    assert _rows(load_dataset(repo, split="train")) == _rows(subsets["10k"])  # `default: true`


def test_repush_no_commit_and_stale_shards_removed(hub_server, repo_name, tmp_path):
    repo = repo_name("dataset-repush")
    _write_folder(tmp_path / "a", {"10k": 2})
    push_dataset_folder(tmp_path / "a", repo)
    commits = hub_server.commit_count(repo, "dataset")
    push_dataset_folder(tmp_path / "a", repo)
    assert hub_server.commit_count(repo, "dataset") == commits

    _write_folder(tmp_path / "b", {"10k": 3})
    push_dataset_folder(tmp_path / "b", repo)
    files = HfApi().list_repo_files(repo, repo_type="dataset")
    shards = sorted(f for f in files if f.startswith("10k/"))
    assert shards == [f"10k/train-0000{i}-of-00003.parquet" for i in range(3)]
    assert len(load_dataset(repo, name="10k", split="train")) == 6


def test_card_is_committed_after_the_data_on_a_revision(hub_server, repo_name, tmp_path):
    _write_folder(tmp_path, {"10k": 3, "60k": 2})
    repo = repo_name("dataset-card-last")
    push_dataset_folder(tmp_path, repo, revision="v2")
    api = HfApi()
    commits = api.list_repo_commits(repo, repo_type="dataset", revision="v2")
    assert commits[0].title.endswith(": dataset card")
    before_card = api.list_repo_files(repo, repo_type="dataset", revision=commits[1].commit_id)
    assert "README.md" not in before_card and len([f for f in before_card if f.endswith(".parquet")]) == 5
    assert len(load_dataset(repo, name="60k", split="train", revision="v2")) == 4
    assert "README.md" not in api.list_repo_files(repo, repo_type="dataset")  # main is untouched


def test_cli_push_dataset(hub_server, repo_name, tmp_path, monkeypatch, capsys):
    from hf_medvlm.cli import main

    _write_folder(tmp_path, {})
    repo = repo_name("cli-dataset")
    assert main(["push", "--folder", str(tmp_path), "--repo_id", repo]) == 0
    assert len(load_dataset(repo, name="60k", split="train")) == 4
    assert main(["push", "--folder", str(tmp_path / "missing"), "--repo_id", repo]) == 2
    monkeypatch.delenv("HF_TOKEN")
    capsys.readouterr()
    assert main(["push", "--folder", str(tmp_path), "--repo_id", repo]) == 2
    err = capsys.readouterr().err.strip()
    assert "set the HF_TOKEN environment variable" in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.integration
def test_demo_folder_from_the_data_writer_round_trips(hub_server, repo_name, tmp_path):
    from hf_medvlm.data.demo import write_demo_dataset

    folder = write_demo_dataset(tmp_path / "demo")
    repo = repo_name("demo")
    push_dataset_folder(folder, repo)
    local = load_dataset(str(folder), name="eval", split="test")
    remote = load_dataset(repo, name="eval", split="test", streaming=True)
    assert [(r["id"], r["question"], np.asarray(r["image"]).tobytes()) for r in remote] == [
        (r["id"], r["question"], np.asarray(r["image"]).tobytes()) for r in local]
    assert len(load_dataset(repo, name="instruct", split="train")) == len(
        load_dataset(str(folder), name="instruct", split="train"))
