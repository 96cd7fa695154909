"""Each family through the CLI at tiny scale: train (own template), LoRA + merge, batched eval, Hub round trip.

The commands run in process (`hf_medvlm.cli.main`), so the tiny Qwen2.5-VL, whose processor needs torchvision's video
half where torchvision is installed, also runs on machines without it (`allow_image_only_video_processors`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from hf_medvlm.cli import main as cli_main
from hf_medvlm.training.model_parts import resolve_parts
from tests.families.conftest import OTHER_FAMILIES, tiny_family

pytestmark = pytest.mark.integration

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "sft"


def _train(recipe: str, checkpoint: Path, data: Path, out: Path, *extra: str) -> Path:
    code = cli_main(["train", "--config", str(RECIPES / recipe), "--model_name_or_path", str(checkpoint),
                     "--dataset_name", str(data), "--output_dir", str(out), *extra])
    assert code == 0
    return out


def _weights(folder) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(folder)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed_by_part(before: dict, after: dict, parts) -> dict[str, tuple[int, int]]:
    """(tensors changed, tensors) per part; the LM counted over its decoder only (the head may be tied to it)."""
    counts: dict[str, list[int]] = {}
    for name, tensor in before.items():
        part = parts.part_of(name)
        if part == "language_model" and not name.startswith(parts.language_model[0] + ".layers."):
            continue
        changed, total = counts.setdefault(part, [0, 0])
        counts[part] = [changed + (not torch.equal(tensor, after[name])), total + 1]
    return {part: tuple(c) for part, c in counts.items()}


@pytest.fixture(scope="module", params=OTHER_FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def trained(family, family_checkpoints, demo_data, tmp_path_factory) -> Path:
    return _train("instruct_vlm.yaml", family_checkpoints(family), demo_data,
                  tmp_path_factory.mktemp(f"trained_{family}"))


def test_training_updates_the_lm_and_projector_not_the_tower(family, trained, family_checkpoints):
    model, processor = tiny_family(family)
    changed = _changed_by_part(_weights(family_checkpoints(family)), _weights(trained), resolve_parts(model))
    assert changed["vision_tower"][0] == 0
    assert changed["multi_modal_projector"][0] == changed["multi_modal_projector"][1]
    assert changed["language_model"][0] == changed["language_model"][1]
    # The folder keeps the family's own template (TRL trained with its {% generation %} variant) and says how it ran.
    assert (trained / "chat_template.jinja").read_text() == processor.chat_template
    config = yaml.safe_load((trained / "resolved_config.yaml").read_text())
    assert config["chat_template_name"] is None and config["stage"] == "instruct"
    history = json.loads((trained / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 3 and all(0 < loss < 20 for loss in losses)
    assert any("length_policy/train/rows_out" in h for h in history)


def test_lora_then_merge_equals_the_adapter_model(family, family_checkpoints, demo_data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    base = family_checkpoints(family)
    adapter = _train("instruct_vlm_lora.yaml", base, demo_data, tmp_path / "lora")
    merged_dir = tmp_path / "merged"
    assert cli_main(["merge-lora", "--adapter_path", str(adapter), "--output_dir", str(merged_dir)]) == 0
    parts = resolve_parts(tiny_family(family)[0])
    changed = _changed_by_part(_weights(base), _weights(merged_dir), parts)
    assert changed["vision_tower"][0] == 0
    assert changed["multi_modal_projector"][0] > 0  # trained in full (modules_to_save)
    assert changed["language_model"][0] > 0  # LoRA deltas folded in

    processor = AutoProcessor.from_pretrained(merged_dir)
    inputs = _one_input(processor)
    with torch.no_grad():
        peft_model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), adapter).eval()
        expected = peft_model(**inputs).logits
        got = AutoModelForImageTextToText.from_pretrained(merged_dir).eval()(**inputs).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def _one_input(processor):
    from tests.conftest import make_rgb_image

    messages = [{"role": "user", "content": [{"type": "image", "image": make_rgb_image(50, 40)},
                                             {"type": "text", "text": "What is shown?"}]}]
    return processor.apply_chat_template([messages], add_generation_prompt=True, tokenize=True, return_dict=True,
                                         return_tensors="pt", processor_kwargs={"add_special_tokens": False})


def test_eval_scores_both_vqa_protocols_in_batches(family, trained, demo_data, tmp_path):
    out = tmp_path / "eval"
    code = cli_main(["eval", "--model_name_or_path", str(trained), "--dataset_name", str(demo_data),
                     "--dataset_config", "eval", "--dataset_split", "test", "--output_dir", str(out),
                     "--max_samples", "6", "--batch_size", "3", "--max_new_tokens", "4", "--dtype", "float32"])
    assert code == 0
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 6
    results = json.loads((out / "results.json").read_text())
    assert set(results["scores"]) == {"llava_med", "strict"} and results["num_questions"] == 6


def test_eval_runs_multiple_choice_and_judged_chat(family, trained, tmp_path, monkeypatch):
    """The other two protocols on the family's own prompts: letters parsed from its answers, chat judged (loopback)."""
    from hf_medvlm.testing.openai_server import start_openai_server
    from tests.eval.conftest import write_eval_parquet
    from tests.eval.test_evaluate_judged import _qa50_parquet

    common = ["--model_name_or_path", str(trained), "--max_new_tokens", "3", "--batch_size", "2", "--dtype", "float32"]
    rows = [dict(id=f"m{i}", question="Which organ?", answer="liver", answer_type="closed",
                 options=["liver", "spleen", "kidney"], answer_label="A") for i in range(3)]
    mc = tmp_path / "mc"
    assert cli_main(["eval", "--task", "multiple_choice", "--dataset_name",
                     str(write_eval_parquet(tmp_path / "mc.parquet", rows)), "--output_dir", str(mc), *common]) == 0
    assert sum(json.loads((mc / "results.json").read_text())["scores"]["huatuo_mc"]["decided_by"].values()) == 3

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    chat = tmp_path / "chat"
    with start_openai_server() as server:
        server.enqueue("8 4\nok", "6 3\nok")
        assert cli_main(["eval", "--task", "chat", "--dataset_name", str(_qa50_parquet(tmp_path / "qa50.parquet")),
                         "--output_dir", str(chat), "--benchmark_name", "qa50", "--llm_base_url", server.url,
                         "--llm_model", "judge", "--llm_concurrency", "1", *common]) == 0
        assert len(server.chat_requests()) == 2
    assert json.loads((chat / "results.json").read_text())["scores"]["llava_med_qa50"]["overall"][
        "relative_score"] == pytest.approx(50.0)


def test_push_and_from_pretrained_round_trip(family, trained, hub_server):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from hf_medvlm.hub import push_model

    repo = f"tester/tiny-{family.replace('_', '-')}"
    push_model(trained, repo)
    processor = AutoProcessor.from_pretrained(repo)
    remote = AutoModelForImageTextToText.from_pretrained(repo).eval()
    local = AutoModelForImageTextToText.from_pretrained(trained).eval()
    assert type(remote) is type(tiny_family(family)[0])
    assert processor.chat_template == tiny_family(family)[1].chat_template
    assert remote.generation_config.eos_token_id == tiny_family(family)[0].generation_config.eos_token_id
    inputs = _one_input(processor)
    with torch.no_grad():
        torch.testing.assert_close(remote(**inputs).logits, local(**inputs).logits)


def test_resume_from_checkpoint_matches_an_uninterrupted_run(family_checkpoints, demo_data, tmp_path):
    """Resuming reloads every tensor: checkpoints are written in the family's on-disk layout, which `from_pretrained`
    converts back and Trainer's raw reload would not. Qwen2.5-VL only (its on-disk layout differs from the in-memory
    one; the reload is the same code for every family), to keep the default suite short."""
    import shutil

    family = "qwen2_5_vl"

    common = ["--save_strategy", "steps", "--save_steps", "1", "--max_steps", "2"]
    full = _train("instruct_vlm.yaml", family_checkpoints(family), demo_data, tmp_path / "full", *common)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoint-1", resumed / "checkpoint-1")
    _train("instruct_vlm.yaml", family_checkpoints(family), demo_data, resumed, *common,
           "--resume_from_checkpoint", str(resumed / "checkpoint-1"))
    a, b = _weights(full), _weights(resumed)
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=1e-5)
