"""A tiny random MedSelector (2-layer CLIP, 32 px images) with a real word-level tokenizer, built offline in well
under a second; for the selection tests, benchmarks and demos."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPImageProcessorPil, CLIPProcessor, PreTrainedTokenizerFast

from ..models.med_selector import MedSelectorConfig, MedSelectorModel
from . import TINY_VISION

__all__ = ["TINY_SELECTOR_WORDS", "build_tiny_selector", "tiny_selector_processor"]

# The vocabulary of the synthetic selection data (tests/selection): filler words plus the QA markers.
TINY_SELECTOR_WORDS = [f"w{i}" for i in range(48)] + ["question:", "answer:", "good", "bad", "caption"]
_SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]


def tiny_selector_processor(image_size: int = 32, max_length: int = 48) -> CLIPProcessor:
    vocab = {token: i for i, token in enumerate(_SPECIALS + TINY_SELECTOR_WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # CLIP pools the text at the first eos token, so every text must end with one.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>", model_max_length=max_length)
    size = {"height": image_size, "width": image_size}
    images = CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size=size)
    return CLIPProcessor(image_processor=images, tokenizer=fast)


def build_tiny_selector(seed: int = 0, max_length: int = 48, **config_overrides) -> tuple[MedSelectorModel,
                                                                                          CLIPProcessor]:
    processor = tiny_selector_processor(max_length=max_length)
    vocab_size = len(processor.tokenizer)
    encoder = dict(
        model_type="clip", projection_dim=16,
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=processor.tokenizer.model_max_length,
                         bos_token_id=processor.tokenizer.bos_token_id, eos_token_id=processor.tokenizer.eos_token_id,
                         pad_token_id=processor.tokenizer.pad_token_id),
        vision_config=dict(TINY_VISION),
    )
    config_overrides.setdefault("head_hidden_sizes", [32, 32])
    config = MedSelectorConfig(encoder_config=encoder, **config_overrides)
    torch.manual_seed(seed)
    return MedSelectorModel(config).eval(), processor
