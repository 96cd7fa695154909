"""Argument parsing, freezing, LoRA targets, projector learning rate and loss masks (unit level, in process)."""

import re

import pytest
import torch

from hf_medvlm.commands.train import parse_args
from hf_medvlm.training.model_setup import check_quantization_supported, freeze_modules, lora_config_for

BASE = ["--model_name_or_path", "x", "--output_dir", "/tmp/unused", "--use_cpu", "true", "--bf16", "false"]


def test_stage_defaults():
    *_, stage1 = parse_args([*BASE, "--stage", "alignment"])
    assert stage1.freeze_modules == ["vision_tower", "language_model"] and stage1.chat_template_name == "plain"
    *_, stage2 = parse_args(BASE)
    assert stage2.freeze_modules == ["vision_tower"] and stage2.chat_template_name == "mistral_instruct"


def test_unknown_yaml_key_is_an_error(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_name_or_path: x\nuse_cpu: true\nbf16: false\nmax_seq_length: 2048\n")
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--config", str(recipe)])
    assert exit_info.value.code == 2
    assert "unknown key 'max_seq_length' (did you mean 'max_length'?)" in capsys.readouterr().err


def test_bad_stage_and_missing_model_are_errors():
    with pytest.raises(SystemExit):
        parse_args([*BASE, "--stage", "pretrain"])
    with pytest.raises(ValueError, match="model_name_or_path"):
        parse_args(["--output_dir", "/tmp/unused", "--use_cpu", "true", "--bf16", "false"])


def test_qlora_on_cpu_fails_up_front():
    *_, model_args, _ = parse_args([*BASE, "--use_peft", "true", "--load_in_4bit", "true"])
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA"):
        check_quantization_supported(model_args)


def test_freezing_by_stage(tiny_llava_med):
    import copy

    model = copy.deepcopy(tiny_llava_med[0])
    freeze_modules(model, ["vision_tower", "language_model"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.multi_modal_projector.") for n in trainable)
    with pytest.raises(ValueError, match="unknown"):
        freeze_modules(model, ["tower"])


def test_image_start_end_tokens_are_for_fresh_models_only():
    with pytest.raises(ValueError, match="fresh model"):
        parse_args([*BASE, "--image_start_end_tokens", "true"])


def test_only_the_start_end_embedding_rows_get_gradients(tiny_llava_med):
    """v1.0's stage 1: the projector plus the `<im_start>`/`<im_end>` input-embedding rows train, nothing else."""
    import copy

    from hf_medvlm.training.model_setup import train_embedding_rows

    model, processor = copy.deepcopy(tiny_llava_med[0]), copy.deepcopy(tiny_llava_med[1])
    start, end = processor.tokenizer.convert_tokens_to_ids(["<unk>", "</s>"])  # stand-ins inside the vocabulary
    processor.image_start_token, processor.image_end_token = "<unk>", "</s>"
    freeze_modules(model, ["vision_tower", "language_model"])
    assert train_embedding_rows(model, processor, [processor.image_start_token, processor.image_end_token]) == [
        start, end]
    assert train_embedding_rows(model, processor, [None, None]) == []
    ids = torch.tensor([[1, start, 400, 500, end, 600]])
    model(input_ids=ids, labels=ids).loss.backward()
    grad = model.get_input_embeddings().weight.grad
    rows = grad.abs().sum(dim=1).nonzero().flatten().tolist()
    assert rows == sorted([start, end])  # 1, 400, 500, 600 were in the input too, but get no gradient
    assert model.lm_head.weight.grad is None  # lm_head stays frozen


def test_lora_targets_only_language_model_linears(tiny_llava_med):
    import copy

    from peft import get_peft_model

    model = copy.deepcopy(tiny_llava_med[0])
    *_, model_args, _ = parse_args([*BASE, "--use_peft", "true", "--lora_r", "128", "--lora_alpha", "256"])
    config = lora_config_for(model, model_args)
    peft_model = get_peft_model(model, config)
    adapted = {n.split(".lora_A")[0] for n, _ in peft_model.named_parameters() if ".lora_A" in n}
    assert adapted and all(".language_model." in n for n in adapted)
    assert not any(re.search(r"vision_tower|multi_modal_projector|lm_head", n) for n in adapted)
    kinds = {n.rsplit(".", 1)[-1] for n in adapted}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("multi_modal_projector.modules_to_save" in n for n in trainable)
    assert not any("vision_tower" in n and "lora" not in n for n in trainable)
    assert peft_model.peft_config["default"].r == 128 and peft_model.peft_config["default"].lora_alpha == 256


def _collate(processor, rows, template):
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from hf_medvlm.models.llava_med import load_chat_template

    processor.chat_template = load_chat_template(template)
    collator = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)
    return collator([{"images": r["images"], "messages": r["messages"]} for r in rows])


@pytest.mark.parametrize("template", ["mistral_instruct", "plain"])
def test_only_assistant_tokens_are_supervised(template):
    from hf_medvlm.testing import build_tiny_llava_med
    from tests.training.conftest import instruct_rows

    model, processor = build_tiny_llava_med()
    rows = instruct_rows(4)
    batch = _collate(processor, rows, template)
    image_id = model.config.image_token_index
    labels = batch["labels"]
    assert not (labels == image_id).any(), "image placeholders are supervised"
    suffix = " </s>" if template == "mistral_instruct" else "\n"
    for row, label in zip(rows, labels):
        supervised = processor.tokenizer.decode(label[label != -100])
        answer = row["messages"][1]["content"][0]["text"]
        # Exactly the assistant text and its terminator: no user text, no [INST]/[/INST], no BOS.
        assert supervised.strip() == (answer + suffix).strip()
    # Every image placeholder is there (16 per image) but unsupervised.
    per_image = (batch["input_ids"] == image_id).sum(dim=1).tolist()
    assert per_image == [16 if r["images"] else 0 for r in rows]


def test_projector_lr_gets_its_own_groups(tiny_llava_med, tiny_data_dir, tmp_path):
    import copy

    import datasets

    from hf_medvlm.training.trainer import MedVLMSFTTrainer

    model, processor = copy.deepcopy(tiny_llava_med[0]), copy.deepcopy(tiny_llava_med[1])
    freeze_modules(model, ["vision_tower"])
    args, *_ = parse_args([*BASE, "--learning_rate", "1e-5", "--report_to", "none", "--max_length", "null"])[2:3]
    args.output_dir = str(tmp_path)
    data = datasets.load_dataset(str(tiny_data_dir), name="instruct", split="train")
    trainer = MedVLMSFTTrainer(model=model, args=args, train_dataset=data, processing_class=processor,
                               projector_lr=2e-3)
    optimizer = trainer.create_optimizer()
    projector = {id(p) for p in model.model.multi_modal_projector.parameters()}
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= projector or not ids & projector
        assert group["lr"] == (2e-3 if ids <= projector else 1e-5)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(p.requires_grad for p in model.parameters())
