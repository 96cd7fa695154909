"""The GPU throughput keys of the 7B recipes: they parse without deprecation warnings, fall back where this machine
cannot run them, and what they ask for reaches the model, the optimizer and the Trainer."""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

import pytest
import torch

from hf_medvlm.commands.train import parse_args
from hf_medvlm.training import acceleration
from hf_medvlm.training.acceleration import (
    fused_adamw_supported,
    resolve_attn_implementation,
    resolve_training_acceleration,
)

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
GPU_RECIPES = sorted(p for p in RECIPES.rglob("*.yaml") if "bf16: true" in p.read_text())
BASE = ["--model_name_or_path", "x", "--output_dir", "/tmp/unused", "--use_cpu", "true", "--bf16", "false"]


@pytest.mark.parametrize("path", GPU_RECIPES, ids=[str(p.relative_to(RECIPES)) for p in GPU_RECIPES])
def test_gpu_recipes_turn_the_throughput_keys_on_without_deprecation_warnings(path):
    with warnings.catch_warnings():
        # `gradient_checkpointing` is a deprecated alias in transformers 5 (FutureWarning); the recipes must not use it.
        warnings.simplefilter("error", FutureWarning)
        _, _, training, model, stage = parse_args(["--config", str(path), "--use_cpu", "true"])
    assert training.bf16 and training.activation_checkpointing
    # LLaVA-Med v1.0 sampled at random (its train.py has no modality/length grouping); its recipes keep that order.
    assert stage.group_by_modality_length != ("llava-med-v1.0-7b" in str(path))
    assert training.use_liger_kernel and not training.torch_compile
    assert str(training.optim.value) == "adamw_torch_fused"
    assert model.attn_implementation == "auto"
    if "lora.yaml" not in path.name:  # PEFT under ZeRO-3 is forced to reentrant checkpointing by TRL
        assert training.activation_checkpointing_kwargs == {"use_reentrant": False}


def test_auto_attention_is_flash_attention_only_when_it_imports(monkeypatch):
    import transformers.utils

    assert resolve_attn_implementation("eager") == "eager" and resolve_attn_implementation(None) is None
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: False)
    assert resolve_attn_implementation("auto") == "sdpa"
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: True)
    assert resolve_attn_implementation("auto") == "flash_attention_2"


def test_liger_without_the_package_or_cuda_falls_back_with_a_warning(caplog):
    _, _, training, model, _ = parse_args([*BASE, "--use_liger_kernel", "true"])
    with caplog.at_level(logging.WARNING, logger=acceleration.__name__):
        decisions = resolve_training_acceleration(training, model)
    assert training.use_liger_kernel is False and "use_liger_kernel" in decisions
    assert "use_liger_kernel is set but" in caplog.text


def test_fused_adamw_probe_and_fallback(monkeypatch):
    assert fused_adamw_supported("cpu")  # torch >= 2.4 has a fused CPU kernel: the recipe's choice is kept on CPU
    assert not fused_adamw_supported("meta")  # a device without a fused kernel
    _, _, training, model, _ = parse_args([*BASE, "--optim", "adamw_torch_fused"])
    resolve_training_acceleration(training, model)
    assert str(training.optim.value) == "adamw_torch_fused"
    monkeypatch.setattr(acceleration, "fused_adamw_supported", lambda device: False)
    decisions = resolve_training_acceleration(training, model)
    assert training.optim == "adamw_torch" and "optim" in decisions


def test_torch_compile_falls_back_only_without_a_compiler(monkeypatch, tmp_path):
    _, _, training, model, _ = parse_args([*BASE, "--torch_compile", "true"])
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no g++, c++ or clang++ on it
    decisions = resolve_training_acceleration(training, model)
    if torch.cuda.is_available():
        pytest.skip("with CUDA, inductor needs no host compiler for the GPU graphs")
    assert training.torch_compile is False and training.torch_compile_backend is None and "torch_compile" in decisions
    _, _, training, model, _ = parse_args([*BASE, "--torch_compile", "true", "--torch_compile_backend", "eager"])
    assert resolve_training_acceleration(training, model) == {} and training.torch_compile


def _recipe_on_tiny(tiny_checkpoint, tiny_data_dir, tmp_path, *extra):
    from hf_medvlm.commands.train import parse_args as parse

    return parse(["--config", str(RECIPES / "llava-med-v1.5-mistral-7b/stage2/full.yaml"),
                  "--model_name_or_path", str(tiny_checkpoint), "--dataset_name", str(tiny_data_dir),
                  "--dataset_config", "instruct", "--output_dir", str(tmp_path / "run"), "--use_cpu", "true",
                  "--max_steps", "1", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
                  "--dataloader_num_workers", "0", "--report_to", "none", "--save_strategy", "no", *extra])


def _checkpointing_kwargs(model) -> list[dict]:
    return [m._gradient_checkpointing_func.keywords for m in model.modules()
            if getattr(m, "gradient_checkpointing", False) and isinstance(
                getattr(m, "_gradient_checkpointing_func", None), functools.partial)]


@pytest.mark.integration
def test_the_7b_recipe_keys_reach_the_model_optimizer_and_trainer(tiny_checkpoint, tiny_data_dir, tmp_path, caplog):
    from hf_medvlm.training.sampler import ModalityLengthGroupedSampler
    from hf_medvlm.training.sft import build_trainer

    with caplog.at_level(logging.WARNING, logger=acceleration.__name__):
        trainer = build_trainer(*_recipe_on_tiny(tiny_checkpoint, tiny_data_dir, tmp_path))
    model = trainer.model
    # attn_implementation: auto -> sdpa here (no flash-attn), on the tower and the LM alike
    assert {model.config._attn_implementation, model.config.text_config._attn_implementation,
            model.config.vision_config._attn_implementation} == {"sdpa"}
    assert model.dtype == torch.bfloat16 and trainer.accelerator.mixed_precision == "bf16"
    assert not trainer.liger_kernels_applied and "use_liger_kernel is set but" in caplog.text
    assert isinstance(trainer._get_train_sampler(), ModalityLengthGroupedSampler)
    head_calls = []
    model.lm_head.register_forward_hook(lambda *a: head_calls.append(1))
    trainer.train()
    optimizer = trainer.optimizer.optimizer
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["fused"] is True
    assert model.is_activation_checkpointing
    kwargs = _checkpointing_kwargs(model)
    assert kwargs and all(k == {"use_reentrant": False} for k in kwargs)
    # TRL's tiled LM head computed the loss from lm_head.weight: the (batch, length, 32k) logits never existed.
    assert head_calls == []


@pytest.mark.integration
def test_torch_compile_reaches_the_accelerator(tiny_checkpoint, tiny_data_dir, tmp_path):
    from accelerate.utils import DynamoBackend

    from hf_medvlm.training.sft import build_trainer

    args = _recipe_on_tiny(tiny_checkpoint, tiny_data_dir, tmp_path, "--torch_compile", "true",
                           "--torch_compile_backend", "eager", "--bf16", "false", "--dtype", "float32")
    trainer = build_trainer(*args)
    assert trainer.accelerator.state.dynamo_plugin.backend == DynamoBackend.EAGER
    trainer.train()
    assert type(trainer.model_wrapped).__name__ == "OptimizedModule"


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="Liger's Triton kernels need CUDA")
def test_liger_kernels_reach_the_language_model_of_a_llava_med(tiny_llava_med, tmp_path):
    pytest.importorskip("liger_kernel")
    import copy

    from trl import SFTConfig

    from hf_medvlm.training.trainer import MedVLMSFTTrainer
    from tests.training.conftest import instruct_rows

    model, processor = copy.deepcopy(tiny_llava_med[0]), tiny_llava_med[1]
    args = SFTConfig(output_dir=str(tmp_path), use_liger_kernel=True, max_length=None, report_to="none",
                     activation_checkpointing=False)
    import datasets

    trainer = MedVLMSFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(instruct_rows(4)),
                               processing_class=processor)
    lm = model.model.language_model
    assert trainer.liger_kernels_applied and not trainer.args.use_liger_kernel
    assert type(lm.norm).__name__ == "LigerRMSNorm" or "Liger" in lm.norm.forward.__qualname__
    assert "Liger" in type(lm.layers[0].mlp.forward.__self__).__name__ or "Liger" in lm.layers[0].mlp.forward.__qualname__
    trainer.train()  # on the GPU: the kernels run, the loss still comes from TRL's tiled head
