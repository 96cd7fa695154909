"""Every YAML under recipes/ parses with the real parser of the command it belongs to, and opens with a comment that
gives the hardware and an exact launch line naming that command's entry point, this recipe and existing files."""

from __future__ import annotations

import itertools
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
    if "generate" in parts:
        return "generate"
    return "eval" if "eval" in parts else "select" if "selection" in parts else "train"


def _header(path: Path) -> str:
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines[: next(i for i, l in enumerate(lines) if not l.startswith("#"))])


def _launch_block(header: str) -> str:
    """The `# Launch:` line and its indented continuation lines (`#   ...`), without the comment marks."""
    lines = header.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("# Launch:")), None)
    if start is None:
        return ""
    block = [lines[start].removeprefix("# Launch:")]
    block += [line[1:] for line in itertools.takewhile(lambda l: re.match(r"#\s{2,}\S", l), lines[start + 1:])]
    return "\n".join(line.strip() for line in block)


def test_recipes_exist():
    assert len(ALL_YAML) >= 19


@pytest.mark.parametrize("path", ALL_YAML, ids=[str(p.relative_to(RECIPES)) for p in ALL_YAML])
def test_recipe_header_has_hardware_and_an_exact_launch_line(path: Path):
    header, command = _header(path), _command(path)
    launch = _launch_block(header)
    assert "Hardware:" in header and launch.strip(), f"{path}: header needs Hardware and Launch lines"
    accelerate_configs = re.findall(r"--config_file (\S+)", launch)
    for accelerate_config in accelerate_configs:
        assert (REPO / accelerate_config).is_file(), f"{path}: launch line names missing {accelerate_config}"
    if command == "accelerate":
        assert re.search(r"^accelerate launch --config_file \S+ .*" + ENTRY.format(verb="train"), launch, re.M), (
            f"{path}: no `accelerate launch --config_file ... -m hf_medvlm train --config ...` launch line")
        assert [REPO / c for c in accelerate_configs] == [path], f"{path}: launch line names {accelerate_configs}"
        return
    verb = f"{command} " + yaml.safe_load(path.read_text())["command"] if command in ("select", "generate") else command
    recipes = [r for r in re.findall(ENTRY.format(verb=verb), launch) if not r.startswith("<")]  # `<this file>` notes
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
    elif command == "generate":
        from hf_medvlm.commands.generate import parse_args

        assert parse_args(["--config", str(path)])[0] == yaml.safe_load(path.read_text())["command"]
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
def _load(rel):
    from hf_medvlm.commands.train import parse_args

    return parse_args(["--config", str(RECIPES / rel), "--use_cpu", "true"])


def test_v1_recipes_follow_llava_med_v1_0():
    """v1.0.0 README / train.py: CLIP-224, linear projector, <im_start>/<im_end>, v0 template; stage 1 lr 2e-3 x 1 epoch
    at global batch 128 (8 GPUs), stage 2 lr 2e-5 x 3 epochs, VQA fine-tunes 9 epochs at global batch 64."""
    _, _, train, model, stage = _load("llava-med-v1.0-7b/stage1/pretrain.yaml")
    assert stage.vision_model_name_or_path == "openai/clip-vit-large-patch14"
    assert (stage.projector_type, stage.projector_init, stage.image_aspect_mode) == ("linear", "torch", "none")
    assert stage.image_start_end_tokens and stage.train_image_start_end_embeddings
    assert (stage.stage, stage.chat_template_name, train.learning_rate, train.num_train_epochs) == (
        "alignment", "llava_v0", 2e-3, 1)
    assert train.per_device_train_batch_size * train.gradient_accumulation_steps * 8 == 128
    assert train.weight_decay == 0 and train.max_length == 2048
    _, _, train, _, stage = _load("llava-med-v1.0-7b/stage2/instruct.yaml")
    assert (stage.stage, stage.chat_template_name, train.learning_rate, train.num_train_epochs) == (
        "instruct", "llava_v0", 2e-5, 3)
    for task in ("vqa_rad", "slake", "pathvqa"):
        _, _, train, model, stage = _load(f"llava-med-v1.0-7b/vqa/{task}.yaml")
        assert model.model_name_or_path == "runs/llava-med-v1.0-7b/stage2" and stage.chat_template_name == "llava_v0"
        assert (train.num_train_epochs, train.learning_rate) == (9, 2e-5)
        assert train.per_device_train_batch_size * train.gradient_accumulation_steps * 8 == 64


def test_every_stage1_recipe_says_which_template_and_why():
    for path in sorted(RECIPES.rglob("stage1/*.yaml")):
        header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
        _, _, _, _, stage = _load(str(path.relative_to(RECIPES)))
        assert f"`{stage.chat_template_name}`" in header, path
        assert ("paper" in header or "LLaVA-1.5" in header) and "instruction" in header, path


def test_generation_recipes_name_the_papers_generator_models():
    from hf_medvlm.commands.generate import parse_args
    from hf_medvlm.generation.pipelines import PAPER_GENERATORS

    recipes = sorted(RECIPES.glob("*/generate/*.yaml"))
    methods = {yaml.safe_load(path.read_text())["command"]: path for path in recipes}
    assert set(methods) == set(PAPER_GENERATORS)
    for method, path in methods.items():
        args, endpoint = parse_args(["--config", str(path)])[1]
        assert endpoint.llm_model == PAPER_GENERATORS[method][0], path
        assert args.max_new_tokens == (16 if method == "image-labels" else 4096), path
