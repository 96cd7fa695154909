"""Tiny random LlavaMed models for tests, demos and benchmarks: built from config in well under a second, offline.

The tokenizer is real: the Llama-2 32k BPE tokenizer shipped in the `wordllama` package (same family as LLaVA-Med
v1.0's LLaMA vocabulary), plus `<image>` and `<pad>`.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from ..models.llava_med import LlavaMedConfig, LlavaMedForConditionalGeneration, LlavaMedProcessor
from ..models.llava_med.processing_llava_med import add_image_and_pad_tokens

__all__ = [
    "tiny_llava_med_config", "build_tiny_llava_med", "load_llama2_tokenizer", "save_tiny_base_models",
    "TINY_IMAGE_SIZE", "TINY_PATCH", "TINY_VISION", "TINY_TEXT",
]

TINY_IMAGE_SIZE = 32
TINY_PATCH = 8  # -> (32 / 8)^2 = 16 image positions per image
# The sizes every tiny model here shares (LlavaMed, the other families, the selector's CLIP).
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   image_size=TINY_IMAGE_SIZE, patch_size=TINY_PATCH)
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=2048)


def _wordllama_tokenizer_file() -> Path:
    try:
        import wordllama
    except ImportError as err:
        raise ImportError(
            "the tiny test tokenizer comes from the `wordllama` package: pip install 'hf_medvlm[demo]'"
        ) from err
    return Path(wordllama.__file__).parent / "tokenizers" / "l2_supercat_tokenizer_config.json"


@functools.lru_cache(maxsize=1)
def _plain_llama2_tokenizer() -> PreTrainedTokenizerFast:
    """Shared (parsing the vocabulary takes a while): copy it before changing it."""
    return PreTrainedTokenizerFast(tokenizer_file=str(_wordllama_tokenizer_file()), bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def load_llama2_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh copy of the real Llama-2 tokenizer with `<image>` (32000) and `<pad>` (32001) added."""
    tokenizer = copy.deepcopy(_plain_llama2_tokenizer())
    add_image_and_pad_tokens(tokenizer)
    return tokenizer


def tiny_llava_med_config(vocab_size: int = 32064, **overrides) -> LlavaMedConfig:
    vision = dict(model_type="clip_vision_model", **TINY_VISION, projection_dim=32)
    text = dict(model_type="mistral", **TINY_TEXT, vocab_size=vocab_size, sliding_window=None, bos_token_id=1,
                eos_token_id=2, pad_token_id=32001, tie_word_embeddings=False)
    vision.update(overrides.pop("vision_config", {}))
    text.update(overrides.pop("text_config", {}))
    overrides.setdefault("image_token_index", 32000)
    return LlavaMedConfig(vision_config=vision, text_config=text, **overrides)


def _random_model(model_class, config, seed: int, eos: int | list[int], pad: int):
    """The model with random weights from `seed`, and the stop and pad tokens its real checkpoint ships."""
    torch.manual_seed(seed)
    model = model_class(config)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    return model.eval()


def build_tiny_llava_med(
    seed: int = 0, chat_template: str = "mistral_instruct", **config_overrides
) -> tuple[LlavaMedForConditionalGeneration, LlavaMedProcessor]:
    """A random float32 LlavaMed (CLIP 32 px / patch 8 tower, 2-layer Mistral LM) and its processor."""
    config = tiny_llava_med_config(**config_overrides)
    model = _random_model(LlavaMedForConditionalGeneration, config, seed, config.text_config.eos_token_id,
                          config.text_config.pad_token_id)
    processor = LlavaMedProcessor.from_tokenizer(
        load_llama2_tokenizer(),
        image_size=config.vision_config.image_size,
        patch_size=config.vision_config.patch_size,
        image_aspect_mode=config.image_aspect_mode,
        chat_template=chat_template,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
    )
    return model, processor


def save_tiny_base_models(output_dir, seed: int = 0, names=("vision", "lm"), **config_overrides) -> tuple[Path, Path]:
    """Save a tiny random CLIP vision encoder and a tiny Mistral causal LM (+ Llama-2 tokenizer) separately.

    These are stage 1's inputs (`vision_model_name_or_path`, `text_model_name_or_path`), shaped like the real ones:
    the LM has the plain 32,000-token vocabulary; `<image>`/`<pad>` are added when the LlavaMed model is assembled.
    Returns `(vision_dir, lm_dir)`, the folders `names` in `output_dir`.
    """
    from transformers import AutoModel, AutoModelForCausalLM

    vision_dir, lm_dir = (Path(output_dir) / name for name in names)
    config = tiny_llava_med_config(**config_overrides)
    torch.manual_seed(seed)
    AutoModel.from_config(config.vision_config).save_pretrained(vision_dir)
    text_config = copy.deepcopy(config.text_config)
    text_config.pad_token_id = None
    text_config.vocab_size = 32000
    AutoModelForCausalLM.from_config(text_config).save_pretrained(lm_dir)
    _plain_llama2_tokenizer().save_pretrained(lm_dir)
    return vision_dir, lm_dir
