"""The original LLaVA-Med checkpoint layouts (v1.5 `llava_mistral`, v1.0 `llava`) and how they map onto LlavaMed.

Shared by direct loading (`AutoModelForImageTextToText.from_pretrained(<original dir>)` after `import hf_medvlm`) and
by the converter (`convert_llava_med_to_hf.py`). Everything the two paths must agree on lives here:
the key mapping, the config-field mapping, the tokens added to the original vocabulary, the processor.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import torch
from tokenizers import AddedToken, normalizers
from transformers import AutoConfig, LlamaTokenizer
from transformers.core_model_loading import WeightRenaming, apply_renamings
from transformers.utils import cached_file

from .configuration_llava_med import LlavaMedConfig
from .configuration_llava_mistral import LlavaMedOriginalConfig
from .modeling_llava_med import LlavaMedForConditionalGeneration, _load_vision_encoder, grow_vocab, padded_vocab_size
from .processing_llava_med import IMAGE_TOKEN, PAD_TOKEN, LlavaMedProcessor, add_image_and_pad_tokens

__all__ = [
    "ORIGINAL_KEY_MAPPING",
    "IGNORED_KEYS",
    "KNOWN_VISION_TOWERS",
    "LlavaMedOriginalConfig",
    "LlavaMedOriginalForConditionalGeneration",
    "LlavaMedOriginalProcessor",
    "llava_med_config_from_original",
    "original_config_and_processor",
    "rename_original_key",
]

# Original key -> in-memory LlavaMed key, in transformers' `from_pretrained(key_mapping=...)` form (regex -> replacement,
# every matching rule applied in turn). Direct loading passes it to `from_pretrained`; the converter applies it with
# transformers' own renaming code (`rename_original_key`), so both read the original layout identically.
ORIGINAL_KEY_MAPPING: dict[str, str] = {
    r"^model\.(embed_tokens|layers|norm)\.": r"model.language_model.\1.",
    # v1.5 `mlp2x_gelu`: Sequential(Linear, GELU, Linear) -> indices 0 and 2.
    r"^model\.mm_projector\.0\.": "model.multi_modal_projector.linear_1.",
    r"^model\.mm_projector\.2\.": "model.multi_modal_projector.linear_2.",
    # v1.0 `linear`: a bare Linear.
    r"^model\.mm_projector\.(weight|bias)$": r"model.multi_modal_projector.linear_1.\1",
    # v1.5 keeps the CLIP tower inside the state dict (`LlavaMetaModel.vision_tower.vision_tower`).
    r"^model\.vision_tower\.vision_tower\.vision_model\.": "model.vision_tower.",
}

# Buffers that older transformers versions saved with the weights (v1.0 `.bin` shards, CLIP `position_ids`).
IGNORED_KEYS: tuple[str, ...] = (r"(^|\.)position_ids$", r"rotary_emb\.inv_freq$")

# CLIP towers named by the original configs (`mm_vision_tower`), so no Hub access is needed to know their shape.
# LlavaMedConfig's default vision config is the first one (CLIP ViT-L/14 at 336 px).
_CLIP_L14_336 = LlavaMedConfig.sub_configs_defaults["vision_config"].init_kwargs
KNOWN_VISION_TOWERS: dict[str, dict] = {
    "openai/clip-vit-large-patch14-336": _CLIP_L14_336,
    "openai/clip-vit-large-patch14": {**_CLIP_L14_336, "image_size": 224},
}

ORIGINAL_MODEL_TYPES = {"llava_mistral": "mistral", "llava": "llama"}
V1_IMAGE_START, V1_IMAGE_END = "<im_start>", "<im_end>"


def is_ignored(key: str) -> bool:
    return any(re.search(pattern, key) for pattern in IGNORED_KEYS)


def rename_original_key(key: str) -> str:
    """The in-memory LlavaMed name of original `key`, renamed exactly as `from_pretrained(key_mapping=...)` does."""
    renamings = [WeightRenaming(source, target) for source, target in ORIGINAL_KEY_MAPPING.items()]
    return apply_renamings(key, renamings)


# --------------------------------------------------------------------------------------------- config mapping


def read_original_config(path: str | Path) -> tuple[dict, str]:
    """The original `config.json` as a dict and its path; raises naming the file when it is not an original layout."""
    config_file = cached_file(str(path), "config.json")
    if config_file is None:
        raise FileNotFoundError(f"{Path(path) / 'config.json'}: not found (is this an original LLaVA-Med checkpoint?)")
    with open(config_file, encoding="utf-8") as reader:
        config = json.load(reader)
    if config.get("model_type") not in ORIGINAL_MODEL_TYPES:
        raise ValueError(
            f"{config_file}: model_type {config.get('model_type')!r} is not an original LLaVA-Med checkpoint "
            f"(expected one of {sorted(ORIGINAL_MODEL_TYPES)})"
        )
    return config, config_file


def vision_config_for(original: dict, vision_tower: str | None = None) -> dict:
    """CLIP vision config: from `vision_tower` (dir or repo) if given, else `mm_vision_tower` (known name or dir)."""
    source = vision_tower or original.get("mm_vision_tower")
    if source is None:
        raise ValueError("the original config has no `mm_vision_tower`; pass the CLIP tower explicitly")
    if vision_tower is None and source in KNOWN_VISION_TOWERS:
        return {"model_type": "clip_vision_model", **KNOWN_VISION_TOWERS[source]}
    config = AutoConfig.from_pretrained(source)
    config = getattr(config, "vision_config", config)
    return config.to_dict() | {"model_type": "clip_vision_model"}


_TEXT_FIELDS = (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "max_position_embeddings", "rope_theta", "sliding_window", "rms_norm_eps", "hidden_act", "head_dim",
    "attention_bias", "tie_word_embeddings", "rope_scaling",
)


def llava_med_config_from_original(
    original: dict, added_tokens: dict[str, int], bos_token_id: int, eos_token_id: int, pad_token_id: int,
    vision_tower: str | None = None,
) -> dict:
    """LlavaMedConfig keyword arguments for an original config; `added_tokens` are the ids given to new tokens."""
    text = {k: original[k] for k in _TEXT_FIELDS if original.get(k) is not None}
    if original["model_type"] == "llava_mistral":
        text["sliding_window"] = original.get("sliding_window")
    vocab = max([original["vocab_size"] - 1, *added_tokens.values()]) + 1
    text.update(
        model_type=ORIGINAL_MODEL_TYPES[original["model_type"]], vocab_size=padded_vocab_size(vocab),
        bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
    )
    vision = vision_config_for(original, vision_tower)
    if original.get("mm_hidden_size") not in (None, vision["hidden_size"]):
        raise ValueError(
            f"mm_hidden_size {original['mm_hidden_size']} does not match the vision tower's hidden_size "
            f"{vision['hidden_size']} ({vision_tower or original.get('mm_vision_tower')})"
        )
    select = original.get("mm_vision_select_feature", "patch")
    if select not in ("patch", "cls_patch"):
        raise ValueError(f"mm_vision_select_feature {select!r} is not supported (expected 'patch' or 'cls_patch')")
    projector = original.get("mm_projector_type", "linear")
    if projector not in ("linear", "mlp2x_gelu"):
        raise ValueError(f"mm_projector_type {projector!r} is not supported (LLaVA-Med uses 'mlp2x_gelu' or 'linear')")
    return dict(
        vision_config=vision, text_config=text, image_token_index=added_tokens[IMAGE_TOKEN],
        projector_type=projector, vision_feature_layer=original.get("mm_vision_select_layer", -2),
        vision_feature_select_strategy="default" if select == "patch" else "full",
        image_aspect_mode="pad" if original.get("image_aspect_ratio") == "pad" else "none",
        image_seq_length=(vision["image_size"] // vision["patch_size"]) ** 2, added_tokens=dict(added_tokens),
        tie_word_embeddings=bool(original.get("tie_word_embeddings", False)),
    )


# --------------------------------------------------------------------------------------------- tokenizer / processor


def match_original_chunking(tokenizer) -> None:
    """Encode every text segment between special tokens as its own SentencePiece sentence, as the original does.

    The original tokenises the text around each image separately (v1.5 `tokenizer_image_token`; v1.0's fast LLaMA
    tokenizer splits at its added tokens), and SentencePiece prefixes every sentence with `▁` even when it starts with a
    space (`" and"` -> `▁`, `▁and`). transformers 5's LlamaTokenizer uses a Metaspace pre-tokenizer that prefixes only
    the first segment, and never a segment already starting with a space; the original fast tokenizers' normalizer
    (prepend `▁`, then spaces -> `▁`) reproduces SentencePiece's ids. Added tokens are then matched on the raw text.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if type(getattr(backend, "pre_tokenizer", None)).__name__ != "Metaspace":
        return
    backend.add_tokens([
        AddedToken(t.content, single_word=t.single_word, lstrip=t.lstrip, rstrip=t.rstrip, normalized=False,
                   special=t.special)
        for t in tokenizer.added_tokens_decoder.values() if t.normalized
    ])
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.pre_tokenizer = None


def original_config_and_processor(path: str | Path, original: dict, vision_tower: str | None = None):
    """The LlavaMedConfig and processor of an original checkpoint, and the ids given to `<image>` (and `<pad>`).

    The processor is the original tokenizer plus those tokens (a real `<pad>` when the original pads with nothing or
    with `<unk>`), CLIP preprocessing at the tower's resolution and the version's chat template. `config.added_tokens`
    keeps only the tokens that are new to the original vocabulary.
    """
    tokenizer = load_original_tokenizer(path)
    original_vocab = len(tokenizer)
    if tokenizer.pad_token is not None and tokenizer.pad_token == tokenizer.unk_token:
        tokenizer.pad_token = None  # LLaVA-1.5 training padded with <unk>; a dedicated pad token is unambiguous
    added = add_image_and_pad_tokens(tokenizer)
    added = {IMAGE_TOKEN: tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), **added}
    kwargs = llava_med_config_from_original(
        original, added, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, vision_tower,
    )
    config = LlavaMedConfig(**kwargs | {"added_tokens": {t: i for t, i in added.items() if i >= original_vocab}})
    match_original_chunking(tokenizer)
    v1 = original["model_type"] == "llava"
    wrap = v1 and original.get("mm_use_im_start_end", False)
    processor = LlavaMedProcessor.from_tokenizer(
        tokenizer,
        image_size=config.vision_config.image_size,
        patch_size=config.vision_config.patch_size,
        image_aspect_mode=config.image_aspect_mode,
        chat_template="llava_v0" if v1 else "mistral_instruct",
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        image_start_token=V1_IMAGE_START if wrap else None,
        image_end_token=V1_IMAGE_END if wrap else None,
    )
    return config, processor, added


def load_original_tokenizer(path: str | Path):
    """The checkpoint's slow `LlamaTokenizer` (`tokenizer.model`), converted by transformers as that class.

    Not `AutoTokenizer`: for `model_type: llava` (v1.0) transformers 5 ignores `tokenizer_class` and builds a generic
    tokenizer from `tokenizer.model` that drops SentencePiece's leading `▁`, i.e. different ids from the original.
    """
    try:
        return LlamaTokenizer.from_pretrained(str(path))
    except Exception as err:  # noqa: BLE001 - re-raised with the directory named
        raise ValueError(
            f"{path}: cannot load the original tokenizer ({type(err).__name__}: {err}); a `tokenizer.model`-only "
            "checkpoint needs `sentencepiece` and `protobuf` (dependencies of hf_medvlm: reinstall it)"
        ) from err


# --------------------------------------------------------------------------------------------- direct loading (v1.5)


def _conventional_added_tokens(original: dict) -> dict[str, int]:
    # The Mistral vocabulary has neither `<image>` nor a dedicated pad token; they go right after it.
    vocab = original["vocab_size"]
    return {IMAGE_TOKEN: vocab, PAD_TOKEN: vocab + 1}


class LlavaMedOriginalForConditionalGeneration(LlavaMedForConditionalGeneration):
    """Loader for original v1.5 directories: returns a plain `LlavaMedForConditionalGeneration`.

    Keys are renamed on the fly by `ORIGINAL_KEY_MAPPING`; any key left missing or unexpected is an error. The vocabulary
    is then grown by `<image>`/`<pad>` (padded to a multiple of 64) with the new rows set to the mean embedding.
    `vision_tower=<CLIP dir or repo>` replaces the checkpoint's tower by that CLIP (what the official loader does).
    """

    config_class = LlavaMedOriginalConfig

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, config=None, vision_tower=None, **kwargs):
        path = str(pretrained_model_name_or_path)
        if not isinstance(config, LlavaMedConfig):
            config = AutoConfig.from_pretrained(path, vision_tower=vision_tower)
        final = LlavaMedConfig(**{k: v for k, v in config.to_dict().items() if k not in ("model_type", "auto_map")})
        load_config = copy.deepcopy(final)
        # Load at the original vocabulary size (the new pad id does not exist yet), then grow it.
        load_config.text_config.vocab_size = min(final.added_tokens.values())
        load_config.text_config.pad_token_id = None
        model, info = LlavaMedForConditionalGeneration.from_pretrained(
            path, *args, config=load_config, key_mapping=ORIGINAL_KEY_MAPPING, output_loading_info=True, **kwargs
        )
        _raise_on_load_problems(path, info, vision_tower is not None)
        # Forget the original-layout renames, so save_pretrained writes the LlavaMed layout instead of reverting.
        if hasattr(model, "_weight_conversions"):
            del model._weight_conversions
        grow_vocab(model, final.text_config.vocab_size)
        if vision_tower is not None:
            load_vision_tower_into(model, vision_tower)
        model.config = final
        model.config.dtype = model.dtype
        model.generation_config.pad_token_id = final.text_config.pad_token_id
        return model


def _raise_on_load_problems(path: str, info: dict, tower_replaced: bool) -> None:
    missing = [k for k in info.get("missing_keys", []) if not (tower_replaced and ".vision_tower." in k)]
    unexpected = [k for k in info.get("unexpected_keys", []) if not is_ignored(k)]
    mismatched = info.get("mismatched_keys", [])
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{path}: the checkpoint does not match the LLaVA-Med v1.5 layout: missing {sorted(missing)[:10]}, "
            f"unexpected {sorted(unexpected)[:10]}, mismatched {list(mismatched)[:10]}"
        )


@torch.no_grad()
def load_vision_tower_into(model: LlavaMedForConditionalGeneration, vision_tower: str) -> None:
    state = _load_vision_encoder(vision_tower, model.dtype).state_dict()
    result = model.model.vision_tower.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not is_ignored(k)]
    unexpected = [k for k in result.unexpected_keys if not is_ignored(k)]
    if missing or unexpected:
        raise ValueError(f"{vision_tower}: not a matching CLIP vision tower (missing {missing}, unexpected {unexpected})")


class LlavaMedOriginalProcessor(LlavaMedProcessor):
    """Processor of an original directory (which has no processor files), v1.5 or v1.0: its `LlamaTokenizer` plus
    `<image>` (and `<pad>`), CLIP preprocessing at the resolution of the config's vision tower (v1.5: 336 px, padded to
    square; v1.0: 224 px), and the version's chat template. `AutoProcessor` returns it for v1.5 (`llava_mistral`);
    v1.0's `model_type: llava` belongs to stock Llava, so call this class directly there."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, vision_tower: str | None = None, **kwargs):
        path = str(pretrained_model_name_or_path)
        original, config_file = read_original_config(path)
        _, processor, added = original_config_and_processor(path, original, vision_tower)
        if original["model_type"] == "llava_mistral" and added != _conventional_added_tokens(original):
            raise ValueError(
                f"{config_file}: the tokenizer gave the added tokens ids {added}, but direct loading expects "
                f"{_conventional_added_tokens(original)}; convert this checkpoint with `hf-medvlm convert` instead"
            )
        return processor
