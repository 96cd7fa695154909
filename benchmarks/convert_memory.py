"""Peak memory of `hf-medvlm convert` on a synthetic multi-shard checkpoint in the original LLaVA-Med v1.5 layout.

Builds a ~2 GB float32 checkpoint (4+ shards, real key names and a Mistral-like shape at reduced width) in a temp
dir, converts it in a fresh subprocess with 600 MB output shards, and prints the conversion's peak RSS against the total
checkpoint size and the largest input shard (the converter holds one output shard at a time). The baseline RSS of the
same interpreter after importing the converter is printed too, so that the conversion's own cost (peak - baseline) is
visible. Everything is deleted afterwards.

    python benchmarks/convert_memory.py [--layers 30] [--shards 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

HIDDEN, INTER, KV, VOCAB = 1024, 3584, 256, 32000
CHILD = r"""
import sys, threading, time, psutil
import hf_medvlm.models.llava_med.convert_llava_med_to_hf  # the converter and its imports count in the baseline
from hf_medvlm.commands.convert import main
proc = psutil.Process()
baseline = proc.memory_info().rss
peak = [baseline]
stop = threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.005)
thread = threading.Thread(target=sample, daemon=True)
thread.start()
main(["--input_dir", sys.argv[1], "--output_dir", sys.argv[2], "--max_shard_size", "600MB"])
stop.set(); thread.join()
print("BASELINE_KB", baseline // 1024)
print("PEAK_KB", max(peak[0], proc.memory_info().rss) // 1024)
"""


def synthetic_tensors(layers: int):
    """(original key, shape) of a v1.5-layout checkpoint: LM layers, embeddings, projector, a 4-layer CLIP."""
    yield "model.embed_tokens.weight", (VOCAB, HIDDEN)
    for i in range(layers):
        p = f"model.layers.{i}."
        for name, shape in (("self_attn.q_proj", (HIDDEN, HIDDEN)), ("self_attn.k_proj", (KV, HIDDEN)),
                            ("self_attn.v_proj", (KV, HIDDEN)), ("self_attn.o_proj", (HIDDEN, HIDDEN)),
                            ("mlp.gate_proj", (INTER, HIDDEN)), ("mlp.up_proj", (INTER, HIDDEN)),
                            ("mlp.down_proj", (HIDDEN, INTER))):
            yield p + name + ".weight", shape
        yield p + "input_layernorm.weight", (HIDDEN,)
        yield p + "post_attention_layernorm.weight", (HIDDEN,)
    yield "model.norm.weight", (HIDDEN,)
    yield "lm_head.weight", (VOCAB, HIDDEN)
    yield from (("model.mm_projector.0.weight", (HIDDEN, 256)), ("model.mm_projector.0.bias", (HIDDEN,)),
                ("model.mm_projector.2.weight", (HIDDEN, HIDDEN)), ("model.mm_projector.2.bias", (HIDDEN,)))
    v = "model.vision_tower.vision_tower.vision_model."
    yield from ((v + "embeddings.class_embedding", (256,)), (v + "embeddings.patch_embedding.weight", (256, 3, 14, 14)),
                (v + "embeddings.position_embedding.weight", (577, 256)), (v + "pre_layrnorm.weight", (256,)),
                (v + "pre_layrnorm.bias", (256,)), (v + "post_layernorm.weight", (256,)), (v + "post_layernorm.bias", (256,)))
    for i in range(4):
        p = f"{v}encoder.layers.{i}."
        for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"):
            yield p + name + ".weight", (256, 256)
            yield p + name + ".bias", (256,)
        yield from ((p + "mlp.fc1.weight", (1024, 256)), (p + "mlp.fc1.bias", (1024,)),
                    (p + "mlp.fc2.weight", (256, 1024)), (p + "mlp.fc2.bias", (256,)))
        for name in ("layer_norm1", "layer_norm2"):
            yield p + name + ".weight", (256,)
            yield p + name + ".bias", (256,)


def write_checkpoint(directory: Path, layers: int, n_shards: int) -> list[int]:
    specs = list(synthetic_tensors(layers))
    total = sum(torch.Size(s).numel() * 4 for _, s in specs)
    budget, shards, current, size = total / n_shards, [], [], 0
    for key, shape in specs:
        current.append((key, shape))
        size += torch.Size(shape).numel() * 4
        if size >= budget and len(shards) < n_shards - 1:
            shards.append(current)
            current, size = [], 0
    shards.append(current)
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: torch.randn(s) * 0.02 for k, s in shard}, directory / name, metadata={"format": "pt"})
        weight_map.update({k: name for k, _ in shard})
        print(f"  wrote {name}", flush=True)
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    config = dict(architectures=["LlavaMistralForCausalLM"], model_type="llava_mistral", hidden_size=HIDDEN,
                  intermediate_size=INTER, num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=4,
                  vocab_size=VOCAB, max_position_embeddings=4096, rope_theta=1e6, sliding_window=None,
                  rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                  mm_vision_tower=str(directory / "clip"), mm_hidden_size=256, mm_projector_type="mlp2x_gelu",
                  mm_vision_select_layer=-2, mm_vision_select_feature="patch", image_aspect_ratio="pad")
    (directory / "config.json").write_text(json.dumps(config))
    from transformers import CLIPVisionConfig, PreTrainedTokenizerFast

    CLIPVisionConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                     image_size=336, patch_size=14).save_pretrained(directory / "clip")
    from hf_medvlm.testing import _wordllama_tokenizer_file

    PreTrainedTokenizerFast(tokenizer_file=str(_wordllama_tokenizer_file()), bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(directory)
    return [p.stat().st_size for p in directory.glob("*.safetensors")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    print(shutil.disk_usage(tempfile.gettempdir()).free // 2**30, "GiB free in", tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="convert_memory_"))
    try:
        sizes = write_checkpoint(root / "orig", args.layers, args.shards) if (root / "orig").mkdir() is None else []
        done = subprocess.run([sys.executable, "-c", CHILD, str(root / "orig"), str(root / "out")],
                              capture_output=True, text=True, check=True)
        values = dict(line.split() for line in done.stdout.splitlines() if line.endswith(tuple("0123456789"))
                      and line.split()[0] in ("BASELINE_KB", "PEAK_KB"))
        peak, base = int(values["PEAK_KB"]) / 2**20, int(values["BASELINE_KB"]) / 2**20
        total, largest = sum(sizes) / 2**30, max(sizes) / 2**30
        print(f"checkpoint: {len(sizes)} shards, total {total:.2f} GiB, largest shard {largest:.2f} GiB")
        print(f"peak RSS of the conversion process: {peak:.2f} GiB (sampled every 5 ms; after imports, before converting: {base:.2f} GiB)")
        print(f"peak / largest shard = {peak / largest:.2f}x ; (peak - baseline) / largest shard = "
              f"{(peak - base) / largest:.2f}x ; peak / total = {peak / total:.2f}x")
        print(done.stdout.splitlines()[0] if done.stdout else "")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
