"""Tiny checkpoints in the ORIGINAL LLaVA-Med layouts (v1.5 and v1.0) and an independent reference forward.

The reference follows the original code's math step by step (CLIP hidden state at the selected layer, CLS dropped,
projector, features spliced where the image sentinel sits, the stock causal LM), using only the original weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
)

from hf_medvlm.testing import _wordllama_tokenizer_file

IMAGE_SIZE, PATCH = 32, 8
N_PATCHES = (IMAGE_SIZE // PATCH) ** 2
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
V1_TOKENS = ["[PAD]", "<im_patch>", "<im_start>", "<im_end>"]
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False)


def write_clip(directory: Path, seed: int) -> CLIPVisionModel:
    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                              image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=32)
    model = CLIPVisionModel(config).eval()
    model.save_pretrained(directory)
    return model


def original_tokenizer(v1: bool) -> PreTrainedTokenizerFast:
    tok = PreTrainedTokenizerFast(tokenizer_file=str(_wordllama_tokenizer_file()), bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>")
    if v1:  # v1.0: [PAD] then the three image tokens, as its training code added them (vocab 32004)
        tok.add_special_tokens({"pad_token": "[PAD]"})
        tok.add_tokens(V1_TOKENS[1:], special_tokens=True)
    return tok


def _shard(state: dict, directory: Path, n_shards: int) -> None:
    keys = sorted(state)
    weight_map = {}
    for i in range(n_shards):
        name = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        part = {k: state[k].contiguous() for k in keys[i::n_shards]}
        save_file(part, directory / name, metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
             "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))


def build_original(directory: Path, version: str, clip_dir: Path, seed: int = 0, n_shards: int = 2) -> dict:
    """Write a tiny original checkpoint; return its parts (tensors under their original names, LM, tower)."""
    directory.mkdir(parents=True, exist_ok=True)
    v1 = version == "v1.0"
    tok = original_tokenizer(v1)
    tower = write_clip(clip_dir, seed=100 + seed) if not clip_dir.exists() else CLIPVisionModel.from_pretrained(clip_dir)
    torch.manual_seed(seed)
    vocab = len(tok)
    if v1:
        lm = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, **TEXT)).eval()
    else:
        lm = MistralForCausalLM(MistralConfig(vocab_size=vocab, sliding_window=None, rope_theta=1e6, **TEXT)).eval()
    state = {k: v.clone() for k, v in lm.state_dict().items()}
    if v1:
        state["model.mm_projector.weight"] = torch.randn(32, 32) * 0.2
        state["model.mm_projector.bias"] = torch.randn(32) * 0.2
    else:
        # The v1.5 checkpoint carries its own CLIP tower (different from the separate CLIP dir: seed differs).
        torch.manual_seed(seed + 7)
        own_tower = CLIPVisionModel(tower.config).eval()
        for k, v in own_tower.state_dict().items():
            state[f"model.vision_tower.vision_tower.vision_model.{k}"] = v.clone()
        tower = own_tower
        state["model.mm_projector.0.weight"] = torch.randn(32, 32) * 0.2
        state["model.mm_projector.0.bias"] = torch.randn(32) * 0.2
        state["model.mm_projector.2.weight"] = torch.randn(32, 32) * 0.2
        state["model.mm_projector.2.bias"] = torch.randn(32) * 0.2
    _shard(state, directory, n_shards)
    config = _original_config(v1, vocab, str(clip_dir))
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    tok.save_pretrained(directory)
    return {"state": state, "lm": lm, "tower": tower, "tokenizer": tok, "config": config, "version": version}


def _original_config(v1: bool, vocab: int, clip: str) -> dict:
    common = dict(TEXT, vocab_size=vocab, mm_vision_tower=clip, mm_hidden_size=32, mm_vision_select_layer=-2,
                  use_mm_proj=True, torch_dtype="float32", use_cache=True)
    if v1:
        return dict(common, architectures=["LlavaLlamaForCausalLM"], model_type="llava", bos_token_id=0,
                    eos_token_id=1, pad_token_id=-1, mm_use_im_start_end=True, hidden_act="silu",
                    max_sequence_length=2048)
    return dict(common, architectures=["LlavaMistralForCausalLM"], model_type="llava_mistral", bos_token_id=1,
                eos_token_id=2, mm_projector_type="mlp2x_gelu", mm_vision_select_feature="patch",
                image_aspect_ratio="pad", mm_use_im_start_end=False, mm_use_im_patch_token=False,
                sliding_window=None, rope_theta=1000000.0, hidden_act="silu", tokenizer_model_max_length=2048,
                tokenizer_padding_side="right", img_size=640, vision_backbone="convnextlarge")


# --------------------------------------------------------------------------------------------- reference forward


def make_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 255, (height, width, 3), dtype=np.uint8))


def reference_pixels(image: Image.Image, pad: bool) -> torch.Tensor:
    """expand2square (centred, CLIP mean colour) -> shortest edge bicubic -> centre crop -> normalise."""
    if pad and image.width != image.height:
        side = max(image.size)
        canvas = Image.new("RGB", (side, side), tuple(int(x * 255) for x in CLIP_MEAN))
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = canvas
    scale = IMAGE_SIZE / min(image.size)
    size = (max(IMAGE_SIZE, round(image.width * scale)), max(IMAGE_SIZE, round(image.height * scale)))
    image = image.resize(size, Image.BICUBIC)
    left, top = (image.width - IMAGE_SIZE) // 2, (image.height - IMAGE_SIZE) // 2
    image = image.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    arr = (np.asarray(image, dtype=np.float32) / 255.0 - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())[None]


def reference_ids(parts: dict, prompt: str) -> list[int]:
    """The original tokenisation: v1.5 `tokenizer_image_token` (-200 sentinel); v1.0 literal image tokens."""
    tok = parts["tokenizer"]
    if parts["version"] == "v1.0":
        return tok(prompt.replace("<image>", "<im_start>" + "<im_patch>" * N_PATCHES + "<im_end>")).input_ids
    chunks = [tok(c).input_ids for c in prompt.split("<image>")]
    ids = [tok.bos_token_id]
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(-200)
        ids.extend(chunk[1:] if chunk and chunk[0] == tok.bos_token_id else chunk)
    return ids


@torch.no_grad()
def reference_logits(parts: dict, prompt: str, images: list[Image.Image]) -> torch.Tensor:
    state, tower, lm = parts["state"], parts["tower"], parts["lm"]
    v1 = parts["version"] == "v1.0"
    feats = []
    for image in images:
        hidden = tower(reference_pixels(image, pad=not v1), output_hidden_states=True).hidden_states[-2]
        x = hidden[0, 1:]
        if v1:
            x = F.linear(x, state["model.mm_projector.weight"], state["model.mm_projector.bias"])
        else:
            x = F.linear(x, state["model.mm_projector.0.weight"], state["model.mm_projector.0.bias"])
            x = F.linear(F.gelu(x), state["model.mm_projector.2.weight"], state["model.mm_projector.2.bias"])
        feats.append(x)
    ids = reference_ids(parts, prompt)
    embed = lm.get_input_embeddings().weight
    rows, image_i = [], 0
    patch_id = parts["tokenizer"].convert_tokens_to_ids("<im_patch>") if v1 else None
    i = 0
    while i < len(ids):
        if not v1 and ids[i] == -200:
            rows.append(feats[image_i]); image_i += 1; i += 1
        elif v1 and ids[i] == patch_id:
            rows.append(feats[image_i]); image_i += 1; i += N_PATCHES
        else:
            rows.append(embed[ids[i]][None]); i += 1
    assert image_i == len(images)
    inputs_embeds = torch.cat(rows)[None]
    return lm(inputs_embeds=inputs_embeds).logits[0]
