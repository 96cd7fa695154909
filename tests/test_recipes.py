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
    if "generate" in parts[:-1]:
        return "hf_medvlm.commands.generate"
    return "hf_medvlm.commands.train"


def _generate_method(text: str) -> str:
    """The method a generation recipe's Launch line runs (`hf-medvlm generate <method> --config ...`)."""
    launch = next(line for line in text.splitlines() if line.startswith("# Launch:"))
    return launch.split("hf-medvlm generate ", 1)[1].split()[0]


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
    if parser == "hf_medvlm.commands.generate":
        assert module.parse_args(_generate_method(text), ["--config", str(path)])
        return
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
    methods = {_generate_method(path.read_text()): path for path in recipes}
    assert set(methods) == set(PAPER_GENERATORS)
    for method, path in methods.items():
        args, endpoint = parse_args(method, ["--config", str(path)])
        assert endpoint.llm_model == PAPER_GENERATORS[method][0], path
        assert args.max_new_tokens == (16 if method == "image-labels" else 4096), path
