"""Build the model and processor for a training stage, and choose what it trains.

Three starting points: an existing LlavaMed or stock Llava checkpoint (`model_name_or_path`), or a fresh LlavaMed made
of a pretrained vision encoder and a pretrained causal LM (`vision_model_name_or_path` + `text_model_name_or_path`,
stage 1 of the curriculum, with LLaVA-Med's projector initialisation).
"""

from __future__ import annotations

import logging
import re

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer

from ..models import llava_med  # its model classes are imported on first use, not by `hf-medvlm train --help`

__all__ = [
    "FREEZABLE_MODULES",
    "load_model_and_processor",
    "freeze_modules",
    "lora_config_for",
    "lora_target_regex",
    "check_quantization_supported",
    "trainable_parameter_report",
    "train_embedding_rows",
]

logger = logging.getLogger(__name__)

# name in recipes -> attribute path on LlavaMedForConditionalGeneration
FREEZABLE_MODULES = {
    "vision_tower": ("model.vision_tower",),
    "multi_modal_projector": ("model.multi_modal_projector",),
    "language_model": ("model.language_model", "lm_head"),
}
# Never adapted by LoRA: the tower stays frozen, the projector is trained in full, TRL refuses LoRA on lm_head.
LORA_EXCLUDED = ("vision_tower", "multi_modal_projector", "lm_head")


def load_model_and_processor(model_args, stage_args, *, quantization_config=None, device_map=None):
    """Return `(model, processor)` for `model_args` (TRL `ModelConfig`) and the stage arguments."""
    dtype = _resolve_dtype(model_args.dtype)
    if stage_args.vision_model_name_or_path:
        model, processor = _from_vision_and_text(stage_args, dtype)
        if model_args.attn_implementation:
            model.set_attn_implementation(model_args.attn_implementation)  # tower and LM alike
    else:
        model, processor = _from_checkpoint(model_args, dtype, quantization_config, device_map)
    from ..models.llava_med.processing_llava_med import stop_strings_for_template

    processor.chat_template = llava_med.load_chat_template(stage_args.chat_template_name)
    # Saved with the model, so evaluation stops where this template ends an answer ("###" for llava_v0).
    model.generation_config.stop_strings = stop_strings_for_template(stage_args.chat_template_name)
    return model, processor


def _resolve_dtype(dtype):
    if dtype in (None, "auto"):
        return dtype
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _from_checkpoint(model_args, dtype, quantization_config, device_map):
    path = model_args.model_name_or_path
    config = AutoConfig.from_pretrained(path, revision=model_args.model_revision, trust_remote_code=False)
    if config.model_type not in ("llava_med", "llava"):
        raise ValueError(
            f"model_name_or_path {path!r} is a {config.model_type!r} checkpoint; training needs a LlavaMed or Llava "
            "checkpoint, or vision_model_name_or_path + text_model_name_or_path to build one"
        )
    kwargs = dict(revision=model_args.model_revision, dtype=dtype, attn_implementation=model_args.attn_implementation)
    if quantization_config is not None:
        kwargs.update(quantization_config=quantization_config, device_map=device_map)
    # A stock Llava checkpoint loads into LlavaMed unchanged: same modules, and the Llava weight layout is registered.
    model = llava_med.LlavaMedForConditionalGeneration.from_pretrained(path, **kwargs)
    processor = llava_med.LlavaMedProcessor.from_pretrained(path, revision=model_args.model_revision)
    return model, processor


def _from_vision_and_text(stage_args, dtype):
    from ..models.llava_med.original_checkpoint import V1_IMAGE_END, V1_IMAGE_START

    if not stage_args.text_model_name_or_path:
        raise ValueError("vision_model_name_or_path needs text_model_name_or_path (the causal LM) as well")
    tokenizer = AutoTokenizer.from_pretrained(stage_args.text_model_name_or_path)
    vision_config = AutoConfig.from_pretrained(stage_args.vision_model_name_or_path)
    vision_config = getattr(vision_config, "vision_config", vision_config)
    wrap = stage_args.image_start_end_tokens
    processor = llava_med.LlavaMedProcessor.from_tokenizer(
        tokenizer,
        image_size=vision_config.image_size,
        patch_size=vision_config.patch_size,
        image_aspect_mode=stage_args.image_aspect_mode,
        chat_template=stage_args.chat_template_name,
        image_start_token=V1_IMAGE_START if wrap else None,
        image_end_token=V1_IMAGE_END if wrap else None,
    )
    model = llava_med.LlavaMedForConditionalGeneration.from_vision_and_text_pretrained(
        stage_args.vision_model_name_or_path,
        stage_args.text_model_name_or_path,
        tokenizer=processor.tokenizer,
        dtype=dtype if dtype != "auto" else None,
        projector_init=stage_args.projector_init,
        projector_type=stage_args.projector_type,
        image_aspect_mode=stage_args.image_aspect_mode,
    )
    return model, processor


def train_embedding_rows(model: nn.Module, processor, tokens: list[str | None]) -> list[int]:
    """Make the input-embedding rows of `tokens` trainable and keep every other row fixed; returns their ids.

    LLaVA-Med v1.0's stage 1 trained the new `<im_start>`/`<im_end>` embeddings next to the projector (the rest of the
    embedding matrix was detached, lm_head frozen). Here the whole matrix requires grad and a hook zeroes the gradient
    of the other rows, so with weight decay 0 the optimizer never moves them (Adam's update of a zero gradient is 0).
    """
    ids = [processor.tokenizer.convert_tokens_to_ids(t) for t in tokens if t]
    if not ids:
        return []
    weight = model.get_input_embeddings().weight
    mask = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    mask[ids] = 1
    weight.requires_grad_(True)
    weight.register_hook(lambda grad: grad * mask.to(device=grad.device, dtype=grad.dtype))
    logger.info("Training the input-embedding rows %s (%s) with the projector; the other rows stay fixed", ids, tokens)
    return ids


def freeze_modules(model: nn.Module, names: list[str]) -> None:
    """Train everything except the named parts (`FREEZABLE_MODULES` keys)."""
    unknown = sorted(set(names) - set(FREEZABLE_MODULES))
    if unknown:
        raise ValueError(f"freeze_modules has unknown entries {unknown}; choose from {sorted(FREEZABLE_MODULES)}")
    model.requires_grad_(True)
    for name in names:
        for path in FREEZABLE_MODULES[name]:
            model.get_submodule(path).requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"freeze_modules={names} freezes every parameter; nothing would be trained")


def lora_target_regex(model: nn.Module, names: list[str] | None = None) -> str:
    """A PEFT `target_modules` regex matching the language model's Linear layers (all of them, or those `names`).

    A regex rather than a name list, because CLIP's attention layers share the names `q_proj`/`k_proj`/`v_proj`.
    """
    prefix = "model.language_model."
    found = sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if n.startswith(prefix) and isinstance(m, nn.Linear)}
    )
    if names:
        missing = sorted(set(names) - set(found))
        if missing:
            raise ValueError(f"lora_target_modules {missing} are not Linear layers of the language model {found}")
        found = sorted(set(names))
    return rf".*language_model\..*\.({'|'.join(map(re.escape, found))})"


def lora_config_for(model: nn.Module, model_args):
    """LoRA on the LM's linear layers only; the projector is trained in full (`modules_to_save`)."""
    from peft import LoraConfig

    modules_to_save = list(model_args.lora_modules_to_save or ["multi_modal_projector"])
    bad = [m for m in modules_to_save if "vision_tower" in m or m == "lm_head"]
    if bad:
        raise ValueError(f"lora_modules_to_save {bad}: the vision tower stays frozen and lm_head is not adapted")
    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=lora_target_regex(model, model_args.lora_target_modules),
        modules_to_save=modules_to_save,
        bias="none",
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        task_type=model_args.lora_task_type,
    )


def check_quantization_supported(model_args) -> None:
    """Fail before any loading when 4/8-bit (QLoRA) is asked for where bitsandbytes cannot run."""
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return
    if not torch.cuda.is_available():
        raise ValueError(
            "load_in_4bit/load_in_8bit (QLoRA) needs a CUDA GPU and bitsandbytes; this machine has no CUDA device. "
            "Use the LoRA recipe (use_peft without load_in_4bit) on CPU"
        )
    if not model_args.use_peft:
        raise ValueError("load_in_4bit/load_in_8bit trains through LoRA adapters only; set use_peft: true")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise ValueError("load_in_4bit needs bitsandbytes: pip install 'hf_medvlm[quantization]'") from err


def trainable_parameter_report(model: nn.Module) -> dict[str, int]:
    """Trainable parameter count per top-level part (vision_tower, multi_modal_projector, language_model, ...)."""
    report: dict[str, int] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            part = next((k for k, paths in FREEZABLE_MODULES.items() if any(p in name for p in paths)), "other")
            report[part] = report.get(part, 0) + param.numel()
    return report
