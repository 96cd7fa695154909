"""Every YAML under recipes/ parses with the real parser of its folder (CONTRACTS.md, Training)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
ALL_YAML = sorted(RECIPES.rglob("*.yaml"))


def _parser_for(path: Path):
    parts = path.relative_to(RECIPES).parts
    if parts[0] == "accelerate_configs":
        return "accelerate"
    if "eval" in parts[:-1]:
        return "hf_medvlm.commands.eval"
    if "selection" in parts[:-1]:
        return "hf_medvlm.commands.select"
    return "hf_medvlm.commands.train"


def test_recipes_exist():
    assert len(ALL_YAML) >= 19


@pytest.mark.parametrize("path", ALL_YAML, ids=[str(p.relative_to(RECIPES)) for p in ALL_YAML])
def test_recipe_parses(path: Path):
    text = path.read_text()
    assert text.startswith("#") and "Launch" in text.split("\n\n")[0] or "Launch" in "".join(
        line for line in text.splitlines() if line.startswith("#")
    ), f"{path} must open with a comment giving hardware and launch command"
    assert "Hardware" in text.split("\n", 3)[1] or "Hardware" in text[:600]
    parser = _parser_for(path)
    if parser == "accelerate":
        from accelerate.commands.config.config_args import load_config_from_file

        config = load_config_from_file(str(path))
        assert config.num_processes >= 1
        return
    try:
        module = importlib.import_module(parser)
    except ImportError:
        pytest.skip(f"{parser} is not in this checkout")
    # CPU-only parsing: GPU recipes ask for bf16, whose validation needs a GPU unless use_cpu is set.
    parsed = module.parse_args(["--config", str(path), "--use_cpu", "true"] if parser == "hf_medvlm.commands.train"
                               else ["--config", str(path)])
    assert parsed


def test_sft_recipes_follow_the_papers():
    from hf_medvlm.commands.train import parse_args

    def load(rel):
        return parse_args(["--config", str(RECIPES / rel), "--use_cpu", "true"])

    _, _, train, _, stage = load("llava-med-v1.5-mistral-7b/stage1/pretrain.yaml")
    assert (stage.stage, stage.chat_template_name, train.learning_rate, train.num_train_epochs) == (
        "alignment", "plain", 2e-3, 1)
    assert train.per_device_train_batch_size * train.gradient_accumulation_steps * 8 == 128
    _, _, train, _, stage = load("llava-med-v1.5-mistral-7b/stage2/full.yaml")
    assert (stage.chat_template_name, train.learning_rate, train.num_train_epochs, train.assistant_only_loss) == (
        "mistral_instruct", 2e-5, 3, True)
    _, _, train, model, stage = load("llava-med-v1.5-mistral-7b/stage2/lora.yaml")
    assert (model.use_peft, model.lora_r, model.lora_alpha, stage.projector_lr) == (True, 128, 256, 2e-5)
    _, _, _, model, _ = load("llava-med-v1.5-mistral-7b/stage2/qlora.yaml")
    assert model.load_in_4bit and model.use_peft


@pytest.mark.parametrize("family, folder", [("qwen2_5_vl", "qwen2.5-vl-7b"), ("idefics3", "smolvlm-2.2b")])
def test_family_recipes_train_stage_two_style_with_the_models_own_template(family, folder):
    """Every training recipe of another family than LlavaMed passes the family checks run_sft applies."""
    from hf_medvlm.commands.train import parse_args
    from hf_medvlm.training.sft import fit_stage_to_family

    recipes = sorted((RECIPES / folder).glob("[!e]*/*.yaml"))  # instruct/ and vqa/, not eval/
    assert {p.parent.name for p in recipes} == {"instruct", "vqa"} and len(recipes) >= 5
    for path in recipes:
        *_, stage = parse_args(["--config", str(path), "--use_cpu", "true"])
        fit_stage_to_family(stage, family)
        assert stage.stage == "instruct" and stage.chat_template_name is None, path
    _, _, train, _, stage = parse_args(["--config", str(RECIPES / folder / "instruct" / "pubmedvision.yaml"),
                                        "--use_cpu", "true"])
    assert train.assistant_only_loss and stage.max_images_per_sample == 8 and stage.processor_kwargs
    if family == "qwen2_5_vl":  # HuatuoGPT-Vision's Qwen2.5-VL recipe: everything trained, lr 5e-6, global 128
        assert stage.freeze_modules == [] and train.learning_rate == 5e-6
        assert train.per_device_train_batch_size * train.gradient_accumulation_steps * 8 == 128
