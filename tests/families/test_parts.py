"""Parts, freezing, LoRA targets and quantisation skips, found from each family's own model (no per-family table)."""

from __future__ import annotations

import copy

import pytest
from torch import nn

from hf_medvlm.commands.train import parse_args
from hf_medvlm.training.model_parts import resolve_parts
from hf_medvlm.training.model_setup import freeze_modules, lora_config_for, trainable_parameter_report
from tests.families.conftest import FAMILIES, OTHER_FAMILIES, tiny_family

BASE = ["--model_name_or_path", "x", "--output_dir", "/tmp/unused", "--use_cpu", "true", "--bf16", "false"]


@pytest.mark.parametrize("family", FAMILIES)
def test_parts_are_found_from_the_model(family):
    model, _ = tiny_family(family)
    parts = resolve_parts(model)
    assert (parts.vision_tower, parts.multi_modal_projector, parts.language_model) == FAMILIES[family][1]
    # Every parameter belongs to exactly one part.
    assert {parts.part_of(name) for name, _ in model.named_parameters()} == {
        "vision_tower", "multi_modal_projector", "language_model"}


def test_an_unresolvable_model_is_named_in_the_error():
    from transformers import LlamaConfig, LlamaForCausalLM

    text_only = LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, vocab_size=64))
    with pytest.raises(ValueError, match=r"LlamaForCausalLM.*get_encoder\(modality='image'\) -> None.*\['model', "
                                         r"'lm_head'\]"):
        resolve_parts(text_only)


def test_a_model_without_a_projector_is_named_in_the_error():
    model = copy.deepcopy(tiny_family("qwen2_5_vl")[0])
    model.model.visual.add_module("merge", model.model.visual.merger)  # a name that says nothing
    del model.model.visual.merger
    with pytest.raises(ValueError, match=r"projector of Qwen2_5_VLForConditionalGeneration.*'model.visual'.*merge"):
        resolve_parts(model)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("frozen, trained", [
    (["vision_tower"], {"multi_modal_projector", "language_model"}),  # stage 2 / VQA fine-tunes
    (["vision_tower", "language_model"], {"multi_modal_projector"}),  # LlavaMed stage 1
    (["vision_tower", "multi_modal_projector"], {"language_model"}),
])
def test_freezing_by_part(family, frozen, trained):
    model = copy.deepcopy(tiny_family(family)[0])
    freeze_modules(model, frozen)
    assert set(trainable_parameter_report(model)) == trained
    parts = resolve_parts(model)
    for name, param in model.named_parameters():
        assert param.requires_grad == (parts.part_of(name) in trained), name


def test_freezing_everything_and_unknown_parts_are_errors():
    model = copy.deepcopy(tiny_family("smolvlm")[0])
    with pytest.raises(ValueError, match="nothing would be trained"):
        freeze_modules(model, ["vision_tower", "multi_modal_projector", "language_model"])
    with pytest.raises(ValueError, match="unknown entries \\['connector'\\]"):
        freeze_modules(model, ["connector"])


def _lm_linear_kinds(model, decoder: str) -> set[str]:
    return {n.rsplit(".", 1)[-1] for n, m in model.named_modules()
            if n.startswith(decoder + ".") and isinstance(m, nn.Linear)}


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_adapts_only_the_language_models_linears(family):
    from peft import get_peft_model

    model = copy.deepcopy(tiny_family(family)[0])
    _, projector, (decoder, head) = FAMILIES[family][1]
    *_, model_args, _ = parse_args([*BASE, "--use_peft", "true", "--lora_r", "8", "--lora_alpha", "16"])
    kinds = _lm_linear_kinds(model, decoder)
    peft_model = get_peft_model(model, lora_config_for(model, model_args))
    adapted = {n.split(".lora_A")[0].removeprefix("base_model.model.") for n, _ in peft_model.named_parameters()
               if ".lora_A" in n}
    assert adapted and all(n.startswith(decoder + ".") for n in adapted)
    # Every Linear kind of the LM is adapted (the vision tower has q/k/v_proj too, which must stay out).
    assert {n.rsplit(".", 1)[-1] for n in adapted} == kinds
    parts = resolve_parts(model)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any(f"{projector[0]}.modules_to_save" in n for n in trainable)
    # Besides the adapters, only the projector trains (in full): no tower weight, no head.
    assert {parts.part_of(n) for n in trainable if ".lora_" not in n} == {"multi_modal_projector"}
    assert not any(n.endswith(f"{head}.weight") for n in trainable)


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_lora_refuses_to_save_the_tower_or_head(family):
    model = tiny_family(family)[0]
    vision = FAMILIES[family][1][0][0]
    for bad in (vision, "lm_head"):
        *_, model_args, _ = parse_args([*BASE, "--use_peft", "true", "--lora_modules_to_save", bad])
        with pytest.raises(ValueError, match="vision tower stays frozen"):
            lora_config_for(model, model_args)


@pytest.mark.parametrize("family", FAMILIES)
def test_quantisation_keeps_tower_projector_and_head_in_full_precision(family, family_checkpoints, tiny_checkpoint):
    from transformers.quantizers.quantizers_utils import should_convert_module

    from hf_medvlm.training.model_setup import quantization_skip_modules

    folder = tiny_checkpoint if family == "llava_med" else family_checkpoints(family)
    *_, model_args, _ = parse_args([*BASE[:1], str(folder), *BASE[2:]])
    skip = quantization_skip_modules(model_args)
    model, _ = tiny_family(family)
    parts = resolve_parts(model)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):  # what bitsandbytes would replace
            kept = parts.part_of(name) != "language_model" or name == "lm_head"
            assert should_convert_module(name, skip) != kept, name


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    model, processor = tiny_family("llava_med")
    folder = tmp_path_factory.mktemp("tiny_llava_med")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_projector_learning_rate_finds_each_familys_projector(tmp_path):
    import datasets

    from hf_medvlm.training.trainer import MedVLMSFTTrainer
    from tests.families.conftest import conversation_rows, to_dataset

    model, processor = copy.deepcopy(tiny_family("qwen2_5_vl")[0]), tiny_family("qwen2_5_vl")[1]
    freeze_modules(model, ["vision_tower"])
    args = parse_args([*BASE, "--learning_rate", "1e-5", "--report_to", "none", "--max_length", "null"])[2]
    args.output_dir = str(tmp_path)
    data: datasets.Dataset = to_dataset(conversation_rows())
    trainer = MedVLMSFTTrainer(model=model, args=args, train_dataset=data, processing_class=processor,
                               projector_lr=2e-3)
    optimizer = trainer.create_optimizer()
    merger = {id(p) for p in model.model.visual.merger.parameters()}  # inside the (frozen) vision tower
    in_projector_groups = set()
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= merger or not ids & merger
        assert group["lr"] == (2e-3 if ids <= merger else 1e-5)
        in_projector_groups |= ids & merger
    assert in_projector_groups == merger


def test_checkpoints_that_cannot_train_are_named(tmp_path, family_checkpoints):
    import shutil

    from transformers import LlamaConfig

    from hf_medvlm.training.model_setup import checkpoint_family, load_model_and_processor

    LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path / "text_only")
    *_, model_args, stage = parse_args([*BASE[:1], str(tmp_path / "text_only"), *BASE[2:]])
    with pytest.raises(ValueError, match="'llama' checkpoint \\(LlamaConfig\\), which AutoModelForImageTextToText"):
        checkpoint_family(model_args)
    # A processor without a chat template: the family's own template is what training uses.
    folder = shutil.copytree(family_checkpoints("smolvlm"), tmp_path / "no_template")
    (folder / "chat_template.jinja").unlink()
    *_, model_args, stage = parse_args([*BASE[:1], str(folder), *BASE[2:]])
    assert checkpoint_family(model_args) == "idefics3"
    with pytest.raises(ValueError, match="Idefics3Processor has no chat template"):
        load_model_and_processor(model_args, stage)
