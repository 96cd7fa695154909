"""Fold a LoRA adapter (and its fully trained projector) into a full checkpoint (`hf-medvlm merge-lora`).

The base loads as training loaded it: a LlavaMed or stock Llava base as LlavaMed, any other family through
`AutoModelForImageTextToText`. The result loads with `AutoModelForImageTextToText.from_pretrained` and no PEFT, and its
outputs equal the adapter model's up to floating-point rounding.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoConfig, PreTrainedModel

from .model_setup import model_class_for

__all__ = ["merge_lora"]

logger = logging.getLogger(__name__)


def merge_lora(adapter_path: str | Path, base_model_name_or_path: str | None = None,
               dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """Load base + adapter and return the merged plain model."""
    from peft import PeftConfig, PeftModel

    adapter_path = Path(adapter_path)
    if not (adapter_path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter_path} has no adapter_config.json; is it the output of a use_peft run?")
    base = base_model_name_or_path or PeftConfig.from_pretrained(adapter_path).base_model_name_or_path
    if not base:
        raise ValueError(f"{adapter_path}/adapter_config.json names no base model; pass --base_model_name_or_path")
    model = model_class_for(AutoConfig.from_pretrained(base).model_type).from_pretrained(base, dtype=dtype)
    return PeftModel.from_pretrained(model, adapter_path).merge_and_unload()
