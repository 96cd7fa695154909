"""Tiny checkpoints in the ORIGINAL LLaVA-Med release layouts (v1.5 and v1.0) and an independent reference forward.

The tokenizer files are those of the releases: a real SentencePiece `tokenizer.model` (BPE with byte fallback, trained
here on a small corpus with LLaMA's trainer options), `tokenizer_config.json` naming the slow `LlamaTokenizer`,
`special_tokens_map.json`, and for v1.0 `added_tokens.json`; no `tokenizer.json`, no processor files.

The reference follows the original code's math step by step (SentencePiece ids per text chunk, CLIP hidden state at the
selected layer, CLS dropped, projector, features spliced where the image sentinel sits, the stock causal LM), using
only the original weights and the SentencePiece model itself.
"""

from __future__ import annotations

import functools
import io
import json
import random
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import sentencepiece as spm
from PIL import Image
from safetensors.torch import save_file
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

IMAGE_SIZE, PATCH = 32, 8
N_PATCHES = (IMAGE_SIZE // PATCH) ** 2
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SP_VOCAB = 800  # the SentencePiece vocabulary (LLaMA / Mistral: 32000)
PADDED_VOCAB = 832  # + <image> (+ <pad>), padded to a multiple of 64 by the converter
V1_TOKENS = ["[PAD]", "<im_patch>", "<im_start>", "<im_end>"]  # ids SP_VOCAB.. in v1.0, as its training added them
WORDS = (
    "the chest x-ray shows a right lower lobe opacity consistent with pneumonia ; axial ct of the abdomen with "
    "contrast reveals a hypodense lesion in liver . histology gland formation and nuclear atypia . mri t2 weighted "
    "image demonstrates hyperintense signal left temporal . what organ is shown this ? which modality was used ? "
    "compare these two scans please caption figure describe detail first second larger look at human assistant"
).split()
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False)


def write_clip(directory: Path, seed: int) -> CLIPVisionModel:
    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                              image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=32)
    model = CLIPVisionModel(config).eval()
    model.save_pretrained(directory)
    return model


@functools.lru_cache(maxsize=1)
def sentencepiece_model() -> bytes:
    """A real SentencePiece BPE model, trained with LLaMA's options (byte fallback, split digits, spaces kept)."""
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20))) for _ in range(2000)]
    corpus += ["[INST] What is shown? [/INST] A CT scan of 12 slices, 3.5 mm.", "### Human: Hi!\n### Assistant: Hello"]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=SP_VOCAB, model_type="bpe", byte_fallback=True,
        split_digits=True, add_dummy_prefix=True, remove_extra_whitespaces=False, normalization_rule_name="identity",
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0, num_threads=1, minloglevel=2,
    )
    return model.getvalue()


def _special(content: str, legacy_type: bool = False) -> dict:
    token = {"content": content, "lstrip": False, "normalized": legacy_type, "rstrip": False, "single_word": False}
    return {"__type": "AddedToken", **token} if legacy_type else token


def write_original_tokenizer(directory: Path, v1: bool) -> None:
    """The slow-tokenizer files of the releases (v1.5: as transformers 4.36 saved them; v1.0: as 4.28 did)."""
    (directory / "tokenizer.model").write_bytes(sentencepiece_model())
    if v1:  # transformers 4.28 wrote AddedToken dicts with `__type`, and the added tokens in added_tokens.json
        config = dict(add_bos_token=True, add_eos_token=False, bos_token=_special("<s>", True),
                      clean_up_tokenization_spaces=False, eos_token=_special("</s>", True), model_max_length=2048,
                      pad_token=None, padding_side="right", sp_model_kwargs={}, tokenizer_class="LlamaTokenizer",
                      unk_token=_special("<unk>", True))
        special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "[PAD]", "unk_token": "<unk>"}
        added = {token: SP_VOCAB + i for i, token in enumerate(V1_TOKENS)}
        (directory / "added_tokens.json").write_text(json.dumps(dict(sorted(added.items()))))
    else:  # LLaVA-1.5-style training pads with <unk>; no chat template in the release
        decoder = {str(i): {**_special(c), "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])}
        config = dict(add_bos_token=True, add_eos_token=False, added_tokens_decoder=decoder,
                      additional_special_tokens=[], bos_token="<s>", clean_up_tokenization_spaces=False,
                      eos_token="</s>", legacy=True, model_max_length=2048, pad_token="<unk>", padding_side="right",
                      sp_model_kwargs={}, spaces_between_special_tokens=False, tokenizer_class="LlamaTokenizer",
                      unk_token="<unk>", use_default_system_prompt=False)
        special = {"bos_token": _special("<s>"), "eos_token": _special("</s>"), "pad_token": "<unk>",
                   "unk_token": _special("<unk>")}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def original_vocab(v1: bool) -> dict[str, int]:
    """The tokens the original code gives special ids (v1.0: its added tokens; v1.5: the -200 image sentinel)."""
    return {t: SP_VOCAB + i for i, t in enumerate(V1_TOKENS)} if v1 else {"<image>": -200}


def _shard(state: dict, directory: Path, n_shards: int, bin_format: bool) -> None:
    """Sharded weights + index, as `save_pretrained` wrote them: safetensors (v1.5) or PyTorch `.bin` (v1.0, 2023)."""
    keys = sorted(state)
    prefix, suffix = ("pytorch_model", "bin") if bin_format else ("model", "safetensors")
    weight_map = {}
    for i in range(n_shards):
        name = f"{prefix}-{i + 1:05d}-of-{n_shards:05d}.{suffix}"
        part = {k: state[k].contiguous() for k in keys[i::n_shards]}
        if bin_format:
            torch.save(part, directory / name)
        else:
            save_file(part, directory / name, metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
             "weight_map": weight_map}
    (directory / f"{prefix}.{suffix}.index.json").write_text(json.dumps(index))


def build_original(directory: Path, version: str, clip_dir: Path, seed: int = 0, n_shards: int | None = None,
                   swap_head_rows: tuple[int, int] | None = None) -> dict:
    """Write a tiny original checkpoint; return its parts (tensors under their original names, LM, tower)."""
    directory.mkdir(parents=True, exist_ok=True)
    v1 = version == "v1.0"
    tower = write_clip(clip_dir, seed=100 + seed) if not clip_dir.exists() else CLIPVisionModel.from_pretrained(clip_dir)
    torch.manual_seed(seed)
    vocab = SP_VOCAB + (len(V1_TOKENS) if v1 else 0)
    if v1:
        lm = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, **TEXT)).eval()
    else:
        lm = MistralForCausalLM(MistralConfig(vocab_size=vocab, sliding_window=None, rope_theta=1e6, **TEXT)).eval()
    if swap_head_rows is not None:  # lets a test make the greedy path emit </s> at a chosen step
        a, b = swap_head_rows
        with torch.no_grad():
            lm.lm_head.weight[[a, b]] = lm.lm_head.weight[[b, a]].clone()
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
    _shard(state, directory, n_shards or (2 if v1 else 4), bin_format=v1)  # the releases: 2 .bin / 4 safetensors
    config = _original_config(v1, vocab, str(clip_dir))
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    if not v1:
        generation = {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "transformers_version": "4.36.2"}
        (directory / "generation_config.json").write_text(json.dumps(generation, indent=2))
    write_original_tokenizer(directory, v1)
    sp = spm.SentencePieceProcessor(model_proto=sentencepiece_model())
    return {"state": state, "lm": lm, "tower": tower, "sp": sp, "vocab": vocab, "config": config, "version": version}


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
    short, long = sorted(image.size)
    long_new = int(IMAGE_SIZE * long / short)  # CLIPImageProcessor truncates the long side
    size = (long_new, IMAGE_SIZE) if image.width >= image.height else (IMAGE_SIZE, long_new)
    image = image.resize(size, Image.BICUBIC)
    left, top = (image.width - IMAGE_SIZE) // 2, (image.height - IMAGE_SIZE) // 2
    image = image.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    arr = (np.asarray(image, dtype=np.float32) / 255.0 - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())[None]


def reference_ids(parts: dict, prompt: str) -> list[int]:
    """The original inference tokenisation: BOS, then each text chunk between image tokens encoded on its own by
    SentencePiece (v1.5 `tokenizer_image_token` with the -200 sentinel; v1.0 literal `<im_start>`/`<im_patch>`
    tokens, split out as added tokens by its fast LLaMA tokenizer)."""
    v1 = parts["version"] == "v1.0"
    if v1:
        prompt = prompt.replace("<image>", "<im_start>" + "<im_patch>" * N_PATCHES + "<im_end>")
    specials = original_vocab(v1)
    ids = [1]
    for piece in re.split("(" + "|".join(map(re.escape, specials)) + ")", prompt):
        ids.extend([specials[piece]] if piece in specials else parts["sp"].encode(piece))
    return ids


@torch.no_grad()
def reference_logits(parts: dict, prompt: str, images: list[Image.Image], extra_ids=(), tower=None) -> torch.Tensor:
    state, lm = parts["state"], parts["lm"]
    tower = tower or parts["tower"]
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
    ids = reference_ids(parts, prompt) + list(extra_ids)
    embed = lm.get_input_embeddings().weight
    rows, image_i = [], 0
    patch_id = original_vocab(True)["<im_patch>"] if v1 else None
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


def reference_greedy(parts: dict, prompt: str, images: list[Image.Image], steps: int, eos_id: int | None) -> list[int]:
    """Greedy decoding with the reference forward (full recompute each step; the model is tiny)."""
    out = []
    vocab = parts["vocab"]
    for _ in range(steps):
        token = int(reference_logits(parts, prompt, images, extra_ids=out)[-1, :vocab].argmax())
        out.append(token)
        if token == eos_id:
            break
    return out
