"""`push` reads the folder the way `from_pretrained` / `load_dataset` will and refuses what would not load (exit 2)."""

from __future__ import annotations

import json
import shutil

import pytest

from hf_medvlm.cli import main as cli_main
from hf_medvlm.hub import InvalidFolderError, push_dataset_folder, push_model, validate_model_folder

from .test_push_dataset import CARD, _write_folder


@pytest.fixture(scope="module")
def sharded_model_dir(tiny_llava_med, tmp_path_factory):
    """A valid saved tiny LlavaMed in three safetensors shards, with its processor and remote code."""
    model, processor = tiny_llava_med
    folder = tmp_path_factory.mktemp("sharded")
    model.save_pretrained(folder, max_shard_size="3MB")
    processor.save_pretrained(folder)
    return folder


@pytest.fixture
def model_dir(sharded_model_dir, tmp_path):
    return shutil.copytree(sharded_model_dir, tmp_path / "model")


SHARD = "model-00002-of-00003.safetensors"


def _refused(folder, match):
    with pytest.raises(InvalidFolderError, match=match):
        push_model(folder, "hf-medvlm-tester/x", token="t")  # no Hub involved: refused before any request


def test_a_valid_sharded_folder_passes(model_dir):
    validate_model_folder(model_dir)


def test_index_names_a_missing_shard(model_dir):
    (model_dir / SHARD).unlink()
    _refused(model_dir, f"model.safetensors.index.json names {SHARD}, which is missing")


def test_zero_byte_shard(model_dir):
    (model_dir / SHARD).write_bytes(b"")
    _refused(model_dir, rf"{SHARD} is empty \(0 bytes\)")


@pytest.mark.parametrize("keep", [40, -100], ids=["header", "data"])
def test_truncated_shard(model_dir, keep):
    data = (model_dir / SHARD).read_bytes()
    (model_dir / SHARD).write_bytes(data[:keep])
    _refused(model_dir, f"{SHARD} is not a valid safetensors file .*truncated")


def test_index_mapping_a_tensor_to_the_wrong_shard(model_dir):
    index_path = model_dir / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    tensor = next(k for k, v in index["weight_map"].items() if v == SHARD)
    index["weight_map"][tensor] = "model-00001-of-00003.safetensors"
    index_path.write_text(json.dumps(index))
    _refused(model_dir, f"maps {tensor} to model-00001-of-00003.safetensors, which has no such tensor")


def test_no_tokenizer_or_processor(tiny_llava_med, tmp_path):
    tiny_llava_med[0].save_pretrained(tmp_path)  # model only
    _refused(tmp_path, "has no tokenizer")


def test_no_image_processor(model_dir):
    (model_dir / "processor_config.json").unlink()
    _refused(model_dir, "has no image processor")


def test_no_weights(model_dir):
    for shard in model_dir.glob("*.safetensors*"):
        shard.unlink()
    _refused(model_dir, "has no weights")


@pytest.mark.parametrize("code, match", [
    (None, "maps to remote code 'modeling_llava_med.LlavaMedForConditionalGeneration' but modeling_llava_med.py"),
    ("import torch\n", "defines no LlavaMedForConditionalGeneration"),
    ("from .helpers import x\nclass LlavaMedForConditionalGeneration: pass\n", r"imports \.helpers, which is not"),
    ("from hf_medvlm.models import x\nclass LlavaMedForConditionalGeneration: pass\n", "imports hf_medvlm"),
    ("class LlavaMedForConditionalGeneration(:\n", "does not parse"),
], ids=["missing", "no-class", "relative-import", "imports-package", "syntax"])
def test_remote_code_must_load_without_the_package(model_dir, code, match):
    module = model_dir / "modeling_llava_med.py"
    module.unlink() if code is None else module.write_text(code)
    _refused(model_dir, match)


def test_peft_adapter_with_an_empty_weights_file(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    _refused(tmp_path, "adapter_model.safetensors is empty")


def test_cli_refuses_with_exit_2_before_contacting_the_hub(hub_server, model_dir, capsys):
    (model_dir / SHARD).unlink()
    before = len(hub_server.requests)
    assert cli_main(["push", "--folder", str(model_dir), "--repo_id", "hf-medvlm-tester/refused"]) == 2
    err = capsys.readouterr().err.strip()
    assert SHARD in err and "missing" in err and len(err.splitlines()) == 1
    assert hub_server.requests[before:] == []


# ----------------------------------------------------------------------------------------------------- datasets
def _refused_dataset(folder, match):
    with pytest.raises(InvalidFolderError, match=match):
        push_dataset_folder(folder, "hf-medvlm-tester/x", token="t")


def test_refuses_a_card_without_licence(tmp_path):
    _write_folder(tmp_path, {}, license="''")
    with pytest.raises(ValueError, match="has no licence"):
        push_dataset_folder(tmp_path, "hf-medvlm-tester/x", token="t")


def test_refuses_configs_without_files(tmp_path):
    _write_folder(tmp_path, {})
    for shard in (tmp_path / "60k").iterdir():
        shard.unlink()
    _refused_dataset(tmp_path, "config '60k' .* lists data files '60k/train-\\*' but no file")


def test_refuses_unreadable_or_empty_parquet(tmp_path):
    _write_folder(tmp_path, {"10k": 2})
    shard = tmp_path / "10k" / "train-00001-of-00002.parquet"
    shard.write_bytes(b"not parquet at all")
    _refused_dataset(tmp_path, "train-00001-of-00002.parquet is not readable Parquet")
    shard.write_bytes(b"")
    _refused_dataset(tmp_path, r"train-00001-of-00002.parquet is empty \(0 bytes\)")


def test_refuses_two_default_configs_and_a_card_without_configs(tmp_path):
    _write_folder(tmp_path, {})
    readme = tmp_path / "README.md"
    readme.write_text(CARD.format(license="cc-by-4.0").replace("- config_name: 60k\n", "- config_name: 60k\n  default: true\n"))
    _refused_dataset(tmp_path, "several default configs")
    readme.write_text("---\nlicense: cc-by-4.0\n---\n# no configs\n")
    _refused_dataset(tmp_path, "has no `configs:`")


def test_hidden_leftovers_are_neither_checked_nor_uploaded(hub_server, repo_name, tmp_path):
    from huggingface_hub import HfApi

    _write_folder(tmp_path, {})
    leftover = tmp_path / "10k" / ".tmp-train-123"  # an interrupted writer's temporary folder
    leftover.mkdir()
    (leftover / "shard-00000.parquet").write_bytes(b"half written")
    repo = repo_name("hidden")
    push_dataset_folder(tmp_path, repo)
    assert not [f for f in HfApi().list_repo_files(repo, repo_type="dataset") if ".tmp" in f]
