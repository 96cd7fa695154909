"""Parity of direct loading and conversion of the original LLaVA-Med checkpoints against an independent reference."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageTextToText, AutoProcessor, LlavaForConditionalGeneration

import hf_medvlm  # noqa: F401 - registers the Auto classes
from hf_medvlm.commands.convert import main as convert_main

from .original_builders import (
    PADDED_VOCAB,
    SP_VOCAB,
    build_original,
    make_image,
    reference_greedy,
    reference_logits,
    reference_pixels,
)

ATOL = 1e-5
V15_PROMPTS = {
    "text_before_and_after": ("[INST] Look at this: <image>\nWhat organ is shown? [/INST]", 1),
    "two_images": ("[INST] <image>\nFirst scan.\n<image>\nSecond scan. Which is larger? [/INST]", 2),
}
V10_PROMPTS = {
    "text_before_and_after": ("Caption this figure.\n### Human: <image>\nWhat is this?\n### Assistant:", 1),
    "two_images": ("### Human: Compare <image> and <image> please.\n### Assistant:", 2),
}


def _images(n: int):
    return [make_image(48 + 8 * i, 40, seed=i + 1) for i in range(n)]


def _convert(src: Path, out: Path, *extra: str) -> Path:
    assert convert_main(["--input_dir", str(src), "--output_dir", str(out), *extra]) == 0
    return out


def _assert_parity(model, processor, parts, prompt, images, tower=None):
    enc = processor(text=prompt, images=images, return_tensors="pt")
    vocab = parts["vocab"]
    with torch.no_grad():
        logits = model(**enc).logits[0, :, :vocab]
    reference = reference_logits(parts, prompt, images, tower=tower)
    assert logits.shape == reference.shape
    torch.testing.assert_close(logits, reference, atol=ATOL, rtol=0)
    return enc


@pytest.fixture(scope="module")
def converted(originals):
    root = originals["root"]
    return {
        "v1.5": _convert(root / "v1.5", root / "v1.5-hf"),
        "v1.0": _convert(root / "v1.0", root / "v1.0-hf", "--vision_tower", str(originals["clip"])),
        "llava": _convert(root / "v1.5", root / "v1.5-llava", "--to", "llava"),
    }


# --------------------------------------------------------------------------------------------- direct loading


@pytest.mark.parametrize("case", sorted(V15_PROMPTS))
def test_direct_load_v15_matches_reference(originals, case):
    model = AutoModelForImageTextToText.from_pretrained(originals["root"] / "v1.5")
    processor = AutoProcessor.from_pretrained(originals["root"] / "v1.5")
    assert type(model).__name__ == "LlavaMedForConditionalGeneration"
    assert model.config.model_type == "llava_med"
    assert model.config.added_tokens == {"<image>": SP_VOCAB, "<pad>": SP_VOCAB + 1}
    prompt, n = V15_PROMPTS[case]
    _assert_parity(model.eval(), processor, originals["v1.5"], prompt, _images(n))


def test_direct_load_pixels_match_original_preprocessing(originals):
    processor = AutoProcessor.from_pretrained(originals["root"] / "v1.5")
    image = make_image(48, 40, seed=3)
    pixels = processor(text="<image>", images=[image], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pixels, reference_pixels(image, pad=True), atol=ATOL, rtol=0)


def test_direct_load_with_separate_vision_tower(originals):
    """`vision_tower=` takes CLIP from its own directory (official loader behaviour), not from the checkpoint."""
    from transformers import CLIPVisionModel

    clip = CLIPVisionModel.from_pretrained(originals["clip"]).eval()
    model = AutoModelForImageTextToText.from_pretrained(originals["root"] / "v1.5", vision_tower=str(originals["clip"]))
    processor = AutoProcessor.from_pretrained(originals["root"] / "v1.5")
    own = originals["v1.5"]["tower"].state_dict()["embeddings.patch_embedding.weight"]
    loaded = model.model.vision_tower.state_dict()["embeddings.patch_embedding.weight"]
    assert torch.equal(loaded, clip.state_dict()["embeddings.patch_embedding.weight"]) and not torch.equal(loaded, own)
    prompt, n = V15_PROMPTS["text_before_and_after"]
    _assert_parity(model.eval(), processor, originals["v1.5"], prompt, _images(n), tower=clip)


def test_direct_load_then_save_reloads_as_llava_med(originals, tmp_path):
    model = AutoModelForImageTextToText.from_pretrained(originals["root"] / "v1.5")
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "llava_med"
    again = AutoModelForImageTextToText.from_pretrained(tmp_path)
    torch.testing.assert_close(again.lm_head.weight, model.lm_head.weight)


# --------------------------------------------------------------------------------------------- converter


@pytest.mark.parametrize("version", ["v1.5", "v1.0"])
@pytest.mark.parametrize("case", ["text_before_and_after", "two_images"])
def test_converted_matches_reference(originals, converted, version, case):
    model = AutoModelForImageTextToText.from_pretrained(converted[version]).eval()
    processor = AutoProcessor.from_pretrained(converted[version])
    prompt, n = (V15_PROMPTS if version == "v1.5" else V10_PROMPTS)[case]
    tower = None if version == "v1.5" else originals["v1.0"]["tower"]
    _assert_parity(model, processor, originals[version], prompt, _images(n), tower=tower)


def test_converted_output_files_and_config(converted):
    out = converted["v1.0"]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "generation_config.json", "processor_config.json", "chat_template.jinja",
            "tokenizer.json", "modeling_llava_med.py"} <= names
    config = json.loads((out / "config.json").read_text())
    assert config["added_tokens"] == {"<image>": SP_VOCAB + 4} and config["projector_type"] == "linear"
    assert config["text_config"]["vocab_size"] == PADDED_VOCAB
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 2
    processor = AutoProcessor.from_pretrained(out)
    assert processor.tokenizer.convert_ids_to_tokens(2) == "</s>"
    ids = processor(text="<image>", images=_images(1))["input_ids"][0]
    start, end = processor.tokenizer.convert_tokens_to_ids(["<im_start>", "<im_end>"])
    assert ids[1] == start and ids[-1] == end and ids.count(SP_VOCAB + 4) == 16


def test_converted_new_rows_are_mean_initialised(originals, converted):
    model = AutoModelForImageTextToText.from_pretrained(converted["v1.5"])
    embed = model.get_input_embeddings().weight
    original = originals["v1.5"]["state"]["model.embed_tokens.weight"]
    torch.testing.assert_close(embed[:SP_VOCAB], original)
    torch.testing.assert_close(embed[SP_VOCAB:], original.mean(0, keepdim=True).expand(PADDED_VOCAB - SP_VOCAB, -1))


def test_converted_sharding(originals, tmp_path):
    out = _convert(originals["root"] / "v1.5", tmp_path / "sharded", "--max_shard_size", "100KB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 3
    for shard in set(index["weight_map"].values()):
        n_tensors = sum(1 for v in index["weight_map"].values() if v == shard)
        # A shard exceeds the limit only when it holds one tensor that alone is bigger (the embeddings).
        assert (out / shard).stat().st_size < 1.05e5 or n_tensors == 1
    AutoModelForImageTextToText.from_pretrained(out)


def test_to_llava_loads_in_stock_llava_with_identical_logits(originals, converted):
    stock = LlavaForConditionalGeneration.from_pretrained(converted["llava"]).eval()
    stock_processor = AutoProcessor.from_pretrained(converted["llava"])
    assert type(stock_processor).__name__ == "LlavaProcessor"
    assert json.loads((converted["llava"] / "config.json").read_text())["model_type"] == "llava"
    ours = AutoModelForImageTextToText.from_pretrained(converted["v1.5"]).eval()
    prompt, n = V15_PROMPTS["two_images"]
    enc = _assert_parity(stock, stock_processor, originals["v1.5"], prompt, _images(n))
    with torch.no_grad():
        assert torch.equal(stock(**enc).logits, ours(**enc).logits)


def test_generation_stops_at_eos(originals, tmp_path):
    """Greedy generation equals the reference's and stops at </s> (made to appear at step k by swapping two rows)."""
    parts = originals["v1.5"]
    prompt, n = V15_PROMPTS["text_before_and_after"]
    images = _images(n)
    free = reference_greedy(parts, prompt, images, steps=6, eos_id=None)
    k = next(i for i in range(1, len(free)) if free[i] not in free[:i] and free[i] != 2 and 2 not in free[:i])
    swapped = build_original(tmp_path / "orig", "v1.5", originals["clip"], swap_head_rows=(2, free[k]))
    out = _convert(tmp_path / "orig", tmp_path / "hf")
    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    enc = processor(text=prompt, images=images, return_tensors="pt")
    generated = model.generate(**enc, max_new_tokens=12, do_sample=False)[0, enc["input_ids"].shape[1]:].tolist()
    expected = reference_greedy(swapped, prompt, images, steps=12, eos_id=2)
    assert generated == expected == free[:k] + [2]


def test_delta_applied_to_base_matches_reference(originals, tmp_path):
    """v1.0 delta weights (target - base; extra vocabulary rows kept as is) + base LLaMA == the target model."""
    parts = originals["v1.0"]
    target = parts["state"]
    torch.manual_seed(5)
    base = {k: torch.randn_like(v) for k, v in target.items() if not k.startswith("model.mm_projector")}
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        base[key] = base[key][:SP_VOCAB].clone()
    delta = {k: v.clone() for k, v in target.items()}
    for key, value in base.items():
        delta[key][: value.shape[0]] -= value
    base_dir, delta_dir = tmp_path / "llama-7b", tmp_path / "delta"
    base_dir.mkdir()
    save_file(base, base_dir / "model.safetensors", metadata={"format": "pt"})
    shutil.copytree(originals["root"] / "v1.0", delta_dir)
    for shard in delta_dir.glob("pytorch_model-*.bin"):  # the delta release: PyTorch .bin shards
        part = torch.load(shard, weights_only=True)
        torch.save({k: delta[k] for k in part}, shard)
    out = _convert(delta_dir, tmp_path / "hf", "--delta", "--base_dir", str(base_dir),
                   "--vision_tower", str(originals["clip"]))
    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    prompt, n = V10_PROMPTS["text_before_and_after"]
    _assert_parity(model, AutoProcessor.from_pretrained(out), parts, prompt, _images(n), tower=parts["tower"])


# --------------------------------------------------------------------------------------------- bad input


def _assert_nothing_written(parent: Path, name: str):
    assert not (parent / name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{name}.tmp-")]


def _copy(originals, version, tmp_path) -> Path:
    return Path(shutil.copytree(originals["root"] / version, tmp_path / version))


def test_unknown_model_type_names_the_file(originals, tmp_path):
    src = _copy(originals, "v1.5", tmp_path)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(config | {"model_type": "llava_qwen"}))
    with pytest.raises(ValueError, match=r"config\.json: model_type 'llava_qwen'"):
        _convert(src, tmp_path / "out")
    _assert_nothing_written(tmp_path, "out")


def test_missing_shard_names_the_file(originals, tmp_path):
    src = _copy(originals, "v1.5", tmp_path)
    (src / "model-00002-of-00004.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00004.safetensors"):
        _convert(src, tmp_path / "out")
    _assert_nothing_written(tmp_path, "out")


def test_truncated_safetensors_names_the_file(originals, tmp_path):
    src = _copy(originals, "v1.5", tmp_path)
    shard = src / "model-00001-of-00004.safetensors"
    shard.write_bytes(shard.read_bytes()[:-1000])
    with pytest.raises(ValueError, match="model-00001-of-00004.safetensors.*truncated"):
        _convert(src, tmp_path / "out")
    _assert_nothing_written(tmp_path, "out")


def test_delta_base_vocab_mismatch_names_both_files(originals, tmp_path):
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    base = {k: v for k, v in originals["v1.0"]["state"].items() if not k.startswith("model.mm_projector")}
    base["model.embed_tokens.weight"] = torch.zeros(SP_VOCAB + 10, 32)  # larger than the delta's SP_VOCAB + 4 rows
    save_file(base, base_dir / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"delta/base mismatch for 'model.embed_tokens.weight'.*base/model.safetensors"):
        _convert(originals["root"] / "v1.0", tmp_path / "out", "--delta", "--base_dir", str(base_dir),
                 "--vision_tower", str(originals["clip"]))
    _assert_nothing_written(tmp_path, "out")


def test_unknown_key_fails_loudly_with_its_name(originals, tmp_path):
    src = _copy(originals, "v1.5", tmp_path)
    shard = src / "model-00001-of-00004.safetensors"
    tensors = load_file(shard) | {"model.mystery_adapter.weight": torch.zeros(2)}
    save_file(tensors, shard, metadata={"format": "pt"})
    index = json.loads((src / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.mystery_adapter.weight"] = shard.name
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="model.mystery_adapter.weight"):
        _convert(src, tmp_path / "out")
    with pytest.raises(ValueError, match="model.mystery_adapter.weight"):
        AutoModelForImageTextToText.from_pretrained(src)


def test_missing_key_fails_loudly_with_its_name(originals, tmp_path):
    src = _copy(originals, "v1.5", tmp_path)
    index = json.loads((src / "model.safetensors.index.json").read_text())
    shard = src / index["weight_map"]["model.norm.weight"]
    save_file({k: v for k, v in load_file(shard).items() if k != "model.norm.weight"}, shard)
    del index["weight_map"]["model.norm.weight"]
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="language_model.norm.weight"):
        _convert(src, tmp_path / "out")
    _assert_nothing_written(tmp_path, "out")


def test_v10_needs_a_vision_tower_and_refuses_to_llava(originals, tmp_path):
    with pytest.raises(ValueError, match="--vision_tower"):
        _convert(originals["root"] / "v1.0", tmp_path / "out")
    with pytest.raises(ValueError, match="--to llava needs a v1.5"):
        _convert(originals["root"] / "v1.0", tmp_path / "out", "--to", "llava", "--vision_tower", str(originals["clip"]))


def test_existing_output_is_not_clobbered(originals, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="already exists"):
        _convert(originals["root"] / "v1.5", tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").exists()


@pytest.mark.integration
def test_cli_convert_prints_summary_and_errors_cleanly(originals, tmp_path, capsys):
    from hf_medvlm.cli import main as cli_main  # in process; tests/test_cli_commands.py runs the console entry

    assert cli_main(["convert", "--input_dir", str(originals["root"] / "v1.5"), "--output_dir", str(tmp_path / "out"),
                     "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "80 tensors mapped" in out and f"'<image>': {SP_VOCAB}" in out and "bfloat16" in out
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "out")
    assert model.dtype == torch.bfloat16
    assert cli_main(["convert", "--input_dir", str(tmp_path), "--output_dir", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "Traceback" not in err
    assert cli_main(["convert", "--help"]) == 0
    assert "examples:" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- real checkpoint


@pytest.mark.slow
def test_real_v15_checkpoint_loads_directly():
    """Set HF_MEDVLM_LLAVA_MED_V15=/path/to/llava-med-v1.5-mistral-7b (original layout) to run."""
    path = os.environ.get("HF_MEDVLM_LLAVA_MED_V15")
    if not path:
        pytest.skip("HF_MEDVLM_LLAVA_MED_V15 is not set")
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.bfloat16)
    processor = AutoProcessor.from_pretrained(path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    enc = processor(text=prompt, images=[make_image(400, 300, seed=0)], return_tensors="pt")
    assert enc["input_ids"].eq(model.config.image_token_index).sum() == 576
    out = model.generate(**enc.to(model.dtype), max_new_tokens=8, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]


@pytest.mark.integration
def test_push_to_hub_uploads_the_converted_folder(originals, tmp_path, hub_server, capsys):
    from huggingface_hub import HfApi

    out = tmp_path / "pushed"
    assert convert_main(["--input_dir", str(originals["root"] / "v1.5"), "--output_dir", str(out),
                         "--push_to_hub", "tester/llava-med-v1.5-hf"]) == 0
    files = set(HfApi().list_repo_files("tester/llava-med-v1.5-hf"))
    assert {"config.json", "model.safetensors", "processor_config.json", "generation_config.json",
            "modeling_llava_med.py", "README.md"} <= files
    assert "pushed to" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- one key mapping, layout


def test_direct_loading_and_converter_give_identical_weights(originals, converted):
    """Both paths rename with ORIGINAL_KEY_MAPPING and grow the vocabulary the same way: bit-identical tensors."""
    direct = AutoModelForImageTextToText.from_pretrained(originals["root"] / "v1.5").state_dict()
    loaded = AutoModelForImageTextToText.from_pretrained(converted["v1.5"]).state_dict()
    assert direct.keys() == loaded.keys()
    assert all(torch.equal(direct[k], loaded[k]) for k in direct)


def test_converted_layout_is_what_save_pretrained_writes(converted, tmp_path):
    model = AutoModelForImageTextToText.from_pretrained(converted["v1.5"])
    model.save_pretrained(tmp_path)
    written = set(load_file(converted["v1.5"] / "model.safetensors"))
    assert written == set(load_file(tmp_path / "model.safetensors"))
    assert "language_model.model.layers.0.mlp.up_proj.weight" in written


# --------------------------------------------------------------------------------------------- kill -9 and temporaries
# The child wraps the shard writer so that it stops for good once two shards of the temporary output are complete: the
# test kills it at a known point mid-conversion instead of racing a timer.
HANG_AFTER_TWO_SHARDS = """
import sys, threading
from hf_medvlm.commands.convert import main
from hf_medvlm.models.llava_med import convert_llava_med_to_hf as convert
write, written = convert.save_file, []
def write_then_hang(tensors, filename, metadata=None):
    write(tensors, filename, metadata=metadata)
    written.append(filename)
    if len(written) == 2:
        threading.Event().wait()
convert.save_file = write_then_hang
main(sys.argv[1:])
"""


def _temporaries(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith((f".{name}.tmp-", f".{name}.old-"))]


def _kill_mid_conversion(src: Path, out: Path, *extra: str) -> Path:
    """Start `convert` in a subprocess, SIGKILL it once a second temporary shard is on disk; return the temporary."""
    cmd = [sys.executable, "-c", HANG_AFTER_TWO_SHARDS, "--input_dir", str(src), "--output_dir", str(out), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while not list(out.parent.glob(f".{out.name}.tmp-*/model-00002-of-*.safetensors")):
            assert time.monotonic() < deadline, "no temporary shard appeared"
            try:
                proc.wait(timeout=0.05)  # also notices a child that died early
                raise AssertionError(f"the conversion exited before it was killed: {proc.stderr.read().decode()}")
            except subprocess.TimeoutExpired:
                pass
    finally:
        proc.kill()
        proc.wait()
    (tmp,) = _temporaries(out.parent, out.name)
    return tmp


@pytest.mark.integration
def test_rerun_after_kill_9_cleans_up_and_equals_an_uninterrupted_run(originals, tmp_path):
    src, extra = originals["root"] / "v1.5", ("--max_shard_size", "100KB")
    reference = _convert(src, tmp_path / "reference", *extra)
    out = tmp_path / "out"
    leftover = _kill_mid_conversion(src, out, *extra)
    assert not out.exists()  # nothing that looks complete
    assert leftover.name.split("-")[-2] != str(os.getpid()) and any(leftover.glob("*.safetensors"))
    _convert(src, out, *extra)
    assert _temporaries(tmp_path, "out") == []
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    for path in reference.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name


def test_only_dead_temporaries_of_this_host_are_removed(tmp_path):
    from hf_medvlm.models.llava_med.convert_llava_med_to_hf import remove_stale_temporaries

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    names = {
        "dead": f".out.tmp-{host}-{dead.pid}-0123abcd", "dead_old": f".out.old-{host}-{dead.pid}-89abcdef",
        "live": f".out.tmp-{host}-{os.getpid()}-0123abcd", "other_host": f".out.tmp-elsewhere-{dead.pid}-0123abcd",
        "other_output": f".out2.tmp-{host}-{dead.pid}-0123abcd", "not_ours": f".out.tmp-{host}-{dead.pid}-backup",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path / "out")
    assert sorted(p.name for p in removed) == sorted([names["dead"], names["dead_old"]])
    assert {p.name for p in tmp_path.iterdir()} == set(names.values()) - {names["dead"], names["dead_old"]}
