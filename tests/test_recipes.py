"""Every YAML under recipes/ parses with the real parser of the command it belongs to, and opens with a comment that
gives the hardware and an exact launch line naming that command's entry point, this recipe and existing files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"
ALL_YAML = sorted(RECIPES.rglob("*.yaml"))
# `hf-medvlm <verb>` or `[accelerate launch | torchrun] ... -m hf_medvlm <verb>`, then `--config <path>`.
ENTRY = r"(?:hf-medvlm|-m hf_medvlm) {verb} --config (\S+)"


def _command(path: Path) -> str:
    parts = path.relative_to(RECIPES).parts[:-1]
    if parts[0] == "accelerate_configs":
        return "accelerate"
    return "eval" if "eval" in parts else "select" if "selection" in parts else "train"


def _header(path: Path) -> str:
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines[: next(i for i, l in enumerate(lines) if not l.startswith("#"))])


def test_recipes_exist():
    assert len(ALL_YAML) >= 19


@pytest.mark.parametrize("path", ALL_YAML, ids=[str(p.relative_to(RECIPES)) for p in ALL_YAML])
def test_recipe_header_has_hardware_and_an_exact_launch_line(path: Path):
    header, command = _header(path), _command(path)
    assert "Hardware:" in header and "# Launch:" in header, f"{path}: header needs Hardware and Launch lines"
    for accelerate_config in re.findall(r"--config_file (\S+)", header):
        assert (REPO / accelerate_config).is_file(), f"{path}: launch line names missing {accelerate_config}"
    if command == "accelerate":
        assert re.search(ENTRY.format(verb="train"), header), f"{path}: no launch line through -m hf_medvlm train"
        return
    verb = "select " + yaml.safe_load(path.read_text())["command"] if command == "select" else command
    recipes = [r for r in re.findall(ENTRY.format(verb=verb), header) if not r.startswith("<")]  # `<this file>` notes
    assert recipes, f"{path}: no `hf-medvlm {verb} --config ...` launch line"
    assert all(REPO / recipe == path for recipe in recipes), f"{path}: launch line names {recipes}"


@pytest.mark.parametrize("path", ALL_YAML, ids=[str(p.relative_to(RECIPES)) for p in ALL_YAML])
def test_recipe_parses_with_its_command(path: Path):
    command = _command(path)
    if command == "accelerate":
        from accelerate.commands.config.config_args import load_config_from_file

        assert load_config_from_file(str(path)).num_processes >= 1
        return
    if command == "train":
        from hf_medvlm.commands.train import parse_args

        # CPU-only parsing: GPU recipes ask for bf16, whose validation needs a GPU unless use_cpu is set.
        assert parse_args(["--config", str(path), "--use_cpu", "true"])
    elif command == "eval":
        from hf_medvlm.commands.eval import parse_args

        assert parse_args(["--config", str(path)])
    else:
        from hf_medvlm.commands.select import parse_args

        assert parse_args(["--config", str(path)])


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
