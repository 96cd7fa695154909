"""Build the model and processor for a training run, and choose what it trains.

Any `AutoModelForImageTextToText` checkpoint whose processor has a chat template trains with that template through
TRL's vision collator. LlavaMed (a LlavaMed or stock Llava checkpoint, or a fresh one from a vision encoder and a
causal LM, with LLaVA-Med's projector initialisation) trains with the package's chat templates. Freezing, LoRA targets
and the projector learning rate find the parts from the model itself (`model_parts.resolve_parts`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer
from trl import get_quantization_config

from ..models import llava_med  # its model classes are imported on first use, not by `hf-medvlm train --help`
from .model_parts import PART_NAMES, resolve_parts

__all__ = [
    "LLAVA_MED_MODEL_TYPES",
    "checkpoint_family",
    "load_model_and_processor",
    "model_class_for",
    "freeze_modules",
    "lora_config_for",
    "lora_target_regex",
    "check_quantization_supported",
    "quantization_skip_modules",
    "trainable_parameter_report",
    "train_embedding_rows",
]

logger = logging.getLogger(__name__)

# Checkpoints trained as LlavaMed: a stock Llava checkpoint loads into LlavaMed unchanged.
LLAVA_MED_MODEL_TYPES = ("llava_med", "llava")
# Original LLaVA-Med v1.5 release folders load for inference, but train only once converted.
ORIGINAL_RELEASE_MODEL_TYPES = ("llava_mistral",)


def load_model_and_processor(model_args, stage_args, *, trust_remote_code: bool = False):
    """Return `(model, processor)` for `model_args` (TRL `ModelConfig`) and the stage arguments.

    `trust_remote_code` (SFTConfig's) lets a checkpoint of another family than LlavaMed bring its own code.
    """
    from transformers import AutoProcessor

    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    quantization = _quantization(model_args, trust_remote_code)
    if stage_args.vision_model_name_or_path:
        model, processor = _from_vision_and_text(stage_args, dtype)
        if model_args.attn_implementation:
            model.set_attn_implementation(model_args.attn_implementation)  # tower and LM alike
    else:
        path, revision = model_args.model_name_or_path, model_args.model_revision
        family = checkpoint_family(model_args, trust_remote_code)
        if family == "llava_med":
            processor = llava_med.LlavaMedProcessor.from_pretrained(path, revision=revision)
        else:  # any image-text-to-text checkpoint, with its own processor and the chat template that carries
            processor = AutoProcessor.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code,
                                                      **(stage_args.processor_kwargs or {}))
            if not processor.chat_template:
                raise ValueError(
                    f"{path}: {type(processor).__name__} has no chat template; hf-medvlm trains other families than "
                    "LlavaMed with the model's own template. Save one with the processor (processor.chat_template = "
                    "...; processor.save_pretrained(...)) and train that folder"
                )
        # A stock Llava checkpoint loads into LlavaMed unchanged: same modules, and its weight layout is registered.
        model = model_class_for(family).from_pretrained(
            path, revision=revision, dtype=dtype, attn_implementation=model_args.attn_implementation,
            trust_remote_code=trust_remote_code, **quantization,
        )
        if family != "llava_med":
            return model, processor
    from ..models.llava_med.processing_llava_med import stop_strings_for_template

    processor.chat_template = llava_med.load_chat_template(stage_args.chat_template_name)
    # Saved with the model, so evaluation stops where this template ends an answer ("###" for llava_v0).
    model.generation_config.stop_strings = stop_strings_for_template(stage_args.chat_template_name)
    return model, processor


def checkpoint_family(model_args, trust_remote_code: bool = False) -> str:
    """`"llava_med"` for a LlavaMed or stock Llava checkpoint, else the checkpoint's `model_type`.

    Fails (naming the checkpoint) for a model that `AutoModelForImageTextToText` does not load.
    """
    # Imported here: transformers' auto model classes load every registered model module (`train --help` stays light).
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING

    config = _checkpoint_config(model_args, trust_remote_code)
    if config.model_type in ORIGINAL_RELEASE_MODEL_TYPES:
        raise ValueError(
            f"model_name_or_path {model_args.model_name_or_path!r} is an original LLaVA-Med release "
            f"({config.model_type!r}); convert it first (hf-medvlm convert) and train the converted folder"
        )
    if config.model_type in LLAVA_MED_MODEL_TYPES:
        return "llava_med"
    if type(config) not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING:
        raise ValueError(
            f"model_name_or_path {model_args.model_name_or_path!r} is a {config.model_type!r} checkpoint "
            f"({type(config).__name__}), which AutoModelForImageTextToText does not load; hf-medvlm trains "
            "image-text-to-text models (or builds a LlavaMed from vision_model_name_or_path + text_model_name_or_path)"
        )
    return config.model_type


def model_class_for(model_type: str):
    """LlavaMed for LlavaMed and stock Llava checkpoints (as training loads them), else the Auto class's choice."""
    from transformers import AutoModelForImageTextToText

    if model_type in LLAVA_MED_MODEL_TYPES:
        return llava_med.LlavaMedForConditionalGeneration
    return AutoModelForImageTextToText


def _checkpoint_config(model_args, trust_remote_code: bool):
    return AutoConfig.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision,
                                      trust_remote_code=trust_remote_code)


def _quantization(model_args, trust_remote_code: bool) -> dict:
    """TRL's quantization config (QLoRA) and the device map it needs, as `from_pretrained` keywords, or `{}`."""
    config = get_quantization_config(model_args)
    if config is None:
        return {}
    from accelerate import PartialState

    # The tower, projector and head stay in full precision, as in LLaVA's QLoRA (llm_int8_skip_modules).
    config.llm_int8_skip_modules = quantization_skip_modules(model_args, trust_remote_code)
    return {"quantization_config": config, "device_map": {"": PartialState().local_process_index}}


# ------------------------------------------------------------------------------------------------------- LlavaMed
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


# ---------------------------------------------------------------------------------------- parts, for any family
def freeze_modules(model: nn.Module, names: list[str]) -> None:
    """Train everything except the named parts (`PART_NAMES`), as `resolve_parts` finds them in `model`.

    A projector inside the vision tower (Qwen-VL's `visual.merger`) keeps training when only the tower is frozen.
    """
    unknown = sorted(set(names) - set(PART_NAMES))
    if unknown:
        raise ValueError(f"freeze_modules has unknown entries {unknown}; choose from {list(PART_NAMES)}")
    parts = resolve_parts(model)
    for name, param in model.named_parameters():
        param.requires_grad_(parts.part_of(name) not in names)
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"freeze_modules={names} freezes every parameter; nothing would be trained")


def lora_target_regex(model: nn.Module, names: list[str] | None = None) -> str:
    """A PEFT `target_modules` regex matching the language model's Linear layers (all of them, or those `names`).

    A regex rather than a name list, because vision encoders share the names `q_proj`/`k_proj`/`v_proj`.
    """
    prefix = resolve_parts(model).language_model[0] + "."  # the decoder
    found = sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if n.startswith(prefix) and isinstance(m, nn.Linear)}
    )
    if names:
        missing = sorted(set(names) - set(found))
        if missing:
            raise ValueError(f"lora_target_modules {missing} are not Linear layers of the language model {found}")
        found = sorted(set(names))
    return rf".*{re.escape(prefix)}.*\.({'|'.join(map(re.escape, found))})"


def lora_config_for(model: nn.Module, model_args):
    """LoRA on the LM's linear layers only; the projector is trained in full (`modules_to_save`)."""
    from peft import LoraConfig

    parts = resolve_parts(model)
    modules_to_save = list(model_args.lora_modules_to_save or parts.multi_modal_projector)
    bad = [m for m in modules_to_save if _names_frozen_part(model, parts, m)]
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


def _names_frozen_part(model: nn.Module, parts, name: str) -> bool:
    """Whether `name` (PEFT matches module names by suffix) names the vision tower or the LM head."""
    matched = [n for n, _ in model.named_modules() if n == name or n.endswith("." + name)]
    return name in ("vision_tower", "lm_head") or any(
        n in parts.language_model[1:] or parts.part_of(n) == "vision_tower" for n in matched
    )


def quantization_skip_modules(model_args, trust_remote_code: bool = False) -> list[str]:
    """Module-path patterns kept out of 4/8-bit quantisation: vision tower, projector, LM head (as LLaVA's QLoRA).

    Found on an empty (`meta`) copy of the model built from its config, so nothing is loaded twice.
    """
    from accelerate import init_empty_weights
    from transformers import AutoModelForImageTextToText

    config = _checkpoint_config(model_args, trust_remote_code)
    with init_empty_weights():  # a stock Llava builds the same modules as the LlavaMed it trains as
        skeleton = AutoModelForImageTextToText.from_config(config, trust_remote_code=trust_remote_code)
    parts = resolve_parts(skeleton)
    paths = [*parts.vision_tower, *parts.multi_modal_projector, *parts.language_model[1:]]
    return [re.escape(p) for p in paths]


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
    """Trainable parameter count per part (vision_tower, multi_modal_projector, language_model, other)."""
    parts = resolve_parts(model)
    report = Counter()
    for name, param in model.named_parameters():
        if param.requires_grad:
            report[parts.part_of(name) or "other"] += param.numel()
    return dict(report)
