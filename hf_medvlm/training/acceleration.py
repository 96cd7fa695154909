"""The GPU throughput keys of the training recipes, resolved once against what this machine has.

Every key is a TRL / transformers one; the only value of ours is `attn_implementation: auto`. What each key does here,
its logged fallback, and why Liger's kernels are applied to the language model by its own `model_type` with the loss
kernels off (TRL's tiled LM head never builds the full logits; Liger knows no `llava_med`): docs/scaling.md, section 9.
"""

from __future__ import annotations

import logging
import os
import shutil

import torch

__all__ = ["resolve_attn_implementation", "resolve_training_acceleration", "apply_liger_kernels"]

logger = logging.getLogger(__name__)

FUSED_ADAMW = "adamw_torch_fused"


def resolve_attn_implementation(value: str | None) -> str | None:
    """`"auto"` -> `"flash_attention_2"` where flash-attn is usable (CUDA), else `"sdpa"`; other values unchanged."""
    if value != "auto":
        return value
    from transformers.utils import is_flash_attn_2_available

    return "flash_attention_2" if is_flash_attn_2_available() else "sdpa"


def resolve_training_acceleration(training_args, model_args) -> dict[str, str]:
    """Resolve `attn_implementation: auto` and turn off, with a warning, what this machine cannot run.

    Mutates `training_args` (TRL `SFTConfig`) and `model_args` (TRL `ModelConfig`) in place; returns what it decided,
    `{key: "value (reason)"}`, for the log.
    """
    decisions = {}
    if model_args.attn_implementation == "auto":
        model_args.attn_implementation = resolve_attn_implementation("auto")
        decisions["attn_implementation"] = f"{model_args.attn_implementation} (auto)"
    if training_args.use_liger_kernel and (problem := _liger_problem()):
        _fall_back(training_args, decisions, "use_liger_kernel", False, problem, "the model's own RMSNorm/SwiGLU/RoPE")
    if training_args.optim == FUSED_ADAMW and not fused_adamw_supported(device := training_args.device):
        reason = f"torch has no fused AdamW kernel for {device.type}"
        _fall_back(training_args, decisions, f"optim: {FUSED_ADAMW}", "adamw_torch", reason)
    if training_args.torch_compile and (problem := _compile_problem(training_args)):
        _fall_back(training_args, decisions, "torch_compile", False, problem, "eager mode")
        training_args.torch_compile_backend = training_args.torch_compile_mode = None
    return decisions


def _fall_back(training_args, decisions: dict, key: str, value, reason: str, instead=None) -> None:
    """Set `training_args.<key>` (up to a colon) to `value`, with a warning and a recorded decision."""
    logger.warning("%s is set but %s: training continues with %s.", key, reason, instead or value)
    name = key.partition(":")[0]
    setattr(training_args, name, value)
    decisions[name] = f"{value} ({reason})"


def _liger_problem() -> str | None:
    from transformers.utils import is_liger_kernel_available

    if not is_liger_kernel_available():
        return "liger-kernel is not installed (pip install 'hf_medvlm[gpu]')"
    if not torch.cuda.is_available():
        return "Liger's Triton kernels need a CUDA GPU and none is visible"
    return None


def fused_adamw_supported(device: torch.device | str) -> bool:
    """Whether `torch.optim.AdamW(fused=True)` accepts parameters on `device` (CUDA, CPU, XPU, MPS in torch 2.4+)."""
    param = torch.nn.Parameter(torch.zeros(1, device=device))
    param.grad = torch.zeros_like(param)
    try:
        torch.optim.AdamW([param], fused=True).step()  # torch checks the device at the first step
    except (RuntimeError, ValueError):
        return False
    return True


def _compile_problem(training_args) -> str | None:
    # Inductor writes C++ for CPU graphs; without a compiler the first step fails deep inside torch.
    if training_args.torch_compile_backend not in (None, "inductor") or torch.cuda.is_available():
        return None
    compilers = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if any(c and shutil.which(c) for c in compilers):
        return None
    return "inductor on CPU needs a C++ compiler and none was found (set CXX)"


def apply_liger_kernels(model, kernel_config: dict | None = None) -> None:
    """Liger's layer kernels on `model`'s language model, by the language model's own `model_type`.

    The loss kernels stay off: TRL's tiled LM head already avoids the full logits (see the module docstring).
    Call before PEFT wraps the model.
    """
    from transformers.integrations.liger import apply_liger_kernel

    config = {**(kernel_config or {}), "cross_entropy": False, "fused_linear_cross_entropy": False}
    language_model = model.get_decoder() if hasattr(model, "get_decoder") else model.model.language_model
    apply_liger_kernel(language_model, config)
    logger.info("Liger kernels applied to the %s language model (%s).", language_model.config.model_type, config)
