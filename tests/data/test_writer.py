"""The sharded Parquet writer, README `configs:` bookkeeping, dataset cards and the schema validators."""

from __future__ import annotations

import pytest
from datasets import Features, Value, load_dataset

from datasets.info import DatasetInfosDict

from hf_medvlm.data.card import load_card, require_license, write_dataset_card
from hf_medvlm.data.schema import (
    RecordError, SkipCounter, TRAINING_FEATURES, iter_valid, text_to_content, validate_training_record,
)
from hf_medvlm.data.writer import write_dataset_folder

SIMPLE = Features({"id": Value("string"), "n": Value("int64")})


def _rows(n, prefix="r"):
    return ({"id": f"{prefix}{i}", "n": i} for i in range(n))


def test_shards_rewrites_and_default_config(tmp_path):
    counts = write_dataset_folder(tmp_path, "a", "train", _rows(25), SIMPLE, rows_per_shard=10, row_group_size=4,
                                  progress=False)
    assert counts["num_rows"] == 25 and counts["num_shards"] == 3
    assert counts["files"][0] == "a/train-00000-of-00003.parquet"
    write_dataset_folder(tmp_path, "a", "test", _rows(3), SIMPLE, progress=False)
    write_dataset_folder(tmp_path, "b", "train", _rows(4), SIMPLE, default=True, progress=False)
    # rewriting a split replaces its shards (fewer now) and leaves the other split alone
    write_dataset_folder(tmp_path, "a", "train", _rows(5, "x"), SIMPLE, rows_per_shard=10, progress=False)
    assert sorted(p.name for p in (tmp_path / "a").glob("*.parquet")) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    metadata = load_card(tmp_path).data
    assert [c["config_name"] for c in metadata["configs"]] == ["b", "a"] and metadata["configs"][0]["default"]
    assert "default" not in metadata["configs"][1]
    assert load_dataset(str(tmp_path), split="train")["id"] == ["r0", "r1", "r2", "r3"]  # default = b
    a = load_dataset(str(tmp_path), name="a")
    assert a["train"]["id"] == [f"x{i}" for i in range(5)] and a["test"].num_rows == 3
    info = DatasetInfosDict.from_dataset_card_data(metadata)
    assert {s.name: s.num_examples for s in info["a"].splits.values()} == {"test": 3, "train": 5}
    assert info["b"].features == SIMPLE
    write_dataset_folder(tmp_path, "a", "test", _rows(2), SIMPLE, default=True, progress=False)  # default moves back
    assert [(c["config_name"], c.get("default")) for c in load_card(tmp_path).data["configs"]] == [
        ("a", True), ("b", None)]


def test_empty_split_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(ValueError, match="a/train: no rows"):
        write_dataset_folder(tmp_path, "a", "train", iter(()), SIMPLE, progress=False)
    assert not (tmp_path / "README.md").exists() and not (tmp_path / "a").exists()  # no empty config folder


def test_failed_stream_keeps_previous_shards(tmp_path):
    write_dataset_folder(tmp_path, "a", "train", _rows(3), SIMPLE, progress=False)

    def broken():
        yield {"id": "ok", "n": 1}
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError):
        write_dataset_folder(tmp_path, "a", "train", broken(), SIMPLE, progress=False)
    assert load_dataset(str(tmp_path), name="a", split="train").num_rows == 3
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".tmp")]


def test_card_refuses_missing_licence_and_keeps_configs(tmp_path):
    write_dataset_folder(tmp_path, "a", "train", _rows(2), SIMPLE, progress=False)
    with pytest.raises(ValueError, match="no licence"):
        write_dataset_card(tmp_path, license="", pretty_name="x", summary="s", provenance=["p"], how_built="h")
    with pytest.raises(ValueError, match="no licence"):
        require_license({"license": "other"})
    write_dataset_card(tmp_path, license="cc-by-nc-4.0", research_only=True, pretty_name="x", summary="s",
                       provenance=["raw.json from somewhere"], how_built="h", skipped={"a/train": {"empty_turn": 2}})
    card = load_card(tmp_path)
    metadata, body = card.data, card.text
    assert metadata["license"] == "cc-by-nc-4.0" and metadata["configs"][0]["config_name"] == "a"
    assert "research use only" in body and "raw.json from somewhere" in body and "`empty_turn` 2" in body
    assert "| `a` | `train` | 2 | 1 |" in body


def test_validators_name_each_reason():
    img = [{"type": "image", "text": None}]
    base = {"id": "r", "images": ["x"], "messages": [{"role": "user", "content": img + [{"type": "text", "text": "q"}]},
                                                     {"role": "assistant", "content": [{"type": "text", "text": "a"}]}]}
    assert validate_training_record(base) is base
    cases = {
        "no_conversation": dict(base, messages=[]),
        "image_count_mismatch": dict(base, images=[]),
        "non_alternating_roles": dict(base, messages=base["messages"][:1]),
        "empty_turn": dict(base, messages=[base["messages"][0], {"role": "assistant", "content": [
            {"type": "text", "text": "  "}]}]),
    }
    counter = SkipCounter()
    kept = list(iter_valid(list(cases.values()) + [base], validate_training_record, on_error="skip", counter=counter))
    assert kept == [base] and counter.as_dict() == {k: 1 for k in cases}
    assert "skipped 4 records" in counter.summary()
    with pytest.raises(RecordError, match="image blocks"):
        list(iter_valid([cases["image_count_mismatch"]], validate_training_record, on_error="raise"))


def test_text_to_content_and_schema_columns():
    assert text_to_content("<image>\nWhat is it?") == [{"type": "image", "text": None},
                                                        {"type": "text", "text": "What is it?"}]
    assert [b["type"] for b in text_to_content("A <image> B")] == ["text", "image", "text"]
    assert {"images", "messages", "id", "source"} <= set(TRAINING_FEATURES)
