"""`hf-medvlm demo`: LLaVA-Med's whole curriculum on the embedded real demo set, on a laptop CPU, in minutes.

Steps: build the demo data (real DICOM / histology / fundus images from pip packages) → stage 1 (projector only) →
stage 2 (full, or LoRA then merge) → evaluate with both VQA protocols on a question type never asked in training,
next to the majority answer, the untrained model and an image-swap control → write model and dataset cards → push
both to a Hub → load the pushed model with `AutoModelForImageTextToText.from_pretrained` and answer a question about
one of the real images. The model is a small random one: the output says what it can and cannot learn, and whether
its answers depend on the image. The workflow is the same with real checkpoints on GPUs (docs/demo.md).

The Hub is a loopback server started for the demo unless `--hub endpoint` is given, in which case `HF_ENDPOINT`
(default: the public Hub) and your token are used.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from huggingface_hub import constants

from ..hub import push_dataset_folder, push_model, require_hub_access, write_model_card
from .parser import parse

__all__ = ["DemoArguments", "main"]

EPILOG = """examples:
  hf-medvlm demo                                   # everything, pushed to a loopback Hub started for the demo
  hf-medvlm demo --stage2 lora --output_dir /tmp/demo
  HF_TOKEN=hf_... hf-medvlm demo --hub endpoint --model_repo_id you/llava-med-demo --dataset_repo_id you/demo-data
"""

HUB_MODES = ("loopback", "endpoint", "none")
LOOPBACK_TOKEN = "hf_medvlm_demo_token"
# The training settings both stages share.
TRAINING = {
    "dtype": "float32", "use_cpu": True, "bf16": False, "max_length": None, "assistant_only_loss": True,
    "per_device_train_batch_size": 4, "lr_scheduler_type": "cosine", "warmup_steps": 0.03, "weight_decay": 0.0,
    "activation_checkpointing": False, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
    "disable_tqdm": False,
}


@dataclass
class DemoArguments:
    output_dir: str = field(default="hf_medvlm_demo_output", metadata={"help": "Folder for data, runs and results."})
    stage2: str = field(default="full", metadata={"help": "Stage 2 variant: 'full' or 'lora' (merged afterwards).",
                                                  "choices": ["full", "lora"]})
    stage1_steps: int = field(default=6, metadata={"help": "Optimizer steps of stage 1 (projector alignment)."})
    stage2_steps: int = field(default=80, metadata={"help": "Optimizer steps of stage 2 (instruction tuning)."})
    hidden_size: int = field(default=64, metadata={"help": "Width of the small random vision tower and LM."})
    hub: str = field(default="loopback", metadata={
        "help": "'loopback' starts a local Hub server for the push; 'endpoint' pushes to HF_ENDPOINT (or the public "
                "Hub) with your token; 'none' skips the push and loads the local checkpoint.", "choices": HUB_MODES})
    model_repo_id: str = field(default="hf-medvlm-demo/llava-med-tiny-demo",
                               metadata={"help": "Hub repo the demo model is pushed to."})
    dataset_repo_id: str = field(default="hf-medvlm-demo/llava-med-demo-data",
                                 metadata={"help": "Hub repo the demo dataset is pushed to."})
    seed: int = field(default=42, metadata={"help": "Random seed of the model and of training."})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    (args,) = parse((DemoArguments,), argv, prog="hf-medvlm demo", doc=__doc__, epilog=EPILOG)
    if args.hub == "endpoint":
        require_hub_access("push the demo")  # in offline mode, before minutes of training
    if args.hub == "loopback":
        # huggingface_hub reads HF_ENDPOINT when it is imported, so the demo itself runs in a child process that
        # starts with the loopback server's address in its environment.
        return _run_with_loopback_hub(args, argv)
    return run_demo(args)


def _run_with_loopback_hub(args: DemoArguments, argv: list[str]) -> int:
    from ..testing.hub_server import start_hub_server

    out = Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    server = start_hub_server(tempfile.mkdtemp(prefix="hub_", dir=out))
    # The child talks to no Hub but this loopback one, so HF_HUB_OFFLINE=1 (common on clusters) must not stop its
    # push and reload: offline mode is switched off for the child alone.
    env = dict(os.environ, HF_ENDPOINT=server.url, HF_TOKEN=LOOPBACK_TOKEN, HF_HUB_DISABLE_XET="1",
               HF_HOME=str(out / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="0")
    print(f"Started a loopback Hub at {server.url} for the push (state in {out}).", flush=True)
    try:
        child = [sys.executable, "-m", "hf_medvlm", "demo", *argv, "--hub", "endpoint"]
        return subprocess.run(child, env=env).returncode
    finally:
        server.stop()


def run_demo(args: DemoArguments) -> int:
    _quiet_libraries()
    out = Path(args.output_dir).resolve()
    started, steps = time.perf_counter(), []
    with _step(steps, "build demo data") as note:
        data_dir, counts = _build_data(out, args)
        note(", ".join(f"{k} {v}" for k, v in counts.items()))
    with _step(steps, "stage 1 (projector)") as note:
        stage1 = _train(out, "stage1", _stage1_recipe(out, args))
        note(_loss_note(stage1))
    with _step(steps, f"stage 2 ({args.stage2})") as note:
        final = _stage2(out, args)
        note(_loss_note(out / "stage2"))
    with _step(steps, "evaluate vs baselines") as note:
        comparison = _evaluate_against_baselines(out, args, final, data_dir)
        note(_score_note(comparison["columns"]["trained"]))
    with _step(steps, "model + dataset cards") as note:
        _write_model_card(final, args, out, comparison["model_index"])
        note(f"{final.name}/README.md, {data_dir.name}/README.md")
    with _step(steps, "push to Hub") as note:
        model_ref = _push(args, final, data_dir, note)
    with _step(steps, "from_pretrained + answer") as note:
        question, answer, expected = _answer_one_question(model_ref, data_dir)
        note(f"Q: {question} | A: {answer!r} | reference: {expected!r}")
    _print_summary(steps, time.perf_counter() - started)
    print(_what_it_shows(comparison))
    return 0


def _quiet_libraries() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    # One INFO line per HTTP request to the Hub would bury the demo's own output.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _build_data(out: Path, args: DemoArguments) -> tuple[Path, dict]:
    import pyarrow.parquet as pq

    from ..data.demo import write_demo_dataset
    from ..testing import save_tiny_base_models

    data_dir = write_demo_dataset(out / "data")
    width = args.hidden_size
    save_tiny_base_models(
        out / "base", seed=args.seed,
        vision_config={"hidden_size": width, "intermediate_size": 2 * width, "image_size": 64, "patch_size": 16},
        text_config={"hidden_size": width, "intermediate_size": 2 * width},
    )
    counts = {config: sum(pq.ParquetFile(p).metadata.num_rows for p in (data_dir / config).glob("*.parquet"))
              for config in ("alignment", "instruct", "eval")}
    return data_dir, counts


def _stage1_recipe(out: Path, args: DemoArguments) -> dict:
    # A random tiny model needs larger learning rates than the 7B recipes (2e-3 / 2e-5) to learn in a few steps.
    return {
        "vision_model_name_or_path": str(out / "base" / "vision"), "text_model_name_or_path": str(out / "base" / "lm"),
        "dataset_name": str(out / "data"), "dataset_config": "alignment", "stage": "alignment",
        "output_dir": str(out / "stage1"), "learning_rate": 5e-3, **TRAINING, "max_steps": args.stage1_steps,
        "seed": args.seed,
    }


def _stage2_recipe(out: Path, args: DemoArguments) -> dict:
    recipe = {
        "model_name_or_path": str(out / "stage1"), "dataset_name": str(out / "data"), "dataset_config": "instruct",
        "stage": "instruct", "group_by_modality_length": True, "output_dir": str(out / "stage2"),
        "learning_rate": 6e-3, **TRAINING, "max_steps": args.stage2_steps, "seed": args.seed,
        # Batch 2: TRL's loss over the 32k vocabulary is nearly all of a tiny model's step, and it grows with the
        # supervised tokens; more, smaller steps learn the demo set within the time budget.
        "per_device_train_batch_size": 2,
    }
    if args.stage2 == "lora":
        recipe.update(use_peft=True, lora_r=16, lora_alpha=32, lora_dropout=0.0, projector_lr=3e-3, learning_rate=1e-2)
    return recipe


def _train(out: Path, name: str, recipe: dict) -> Path:
    from . import train

    recipe_path = out / "recipes" / f"{name}.yaml"
    recipe_path.parent.mkdir(parents=True, exist_ok=True)
    recipe_path.write_text(f"# Written by `hf-medvlm demo`; rerun with: hf-medvlm train --config {recipe_path}\n"
                           + yaml.safe_dump(recipe, sort_keys=False))
    if train.main(["--config", str(recipe_path)]) != 0:
        raise RuntimeError(f"training {name} failed")
    return Path(recipe["output_dir"])


def _stage2(out: Path, args: DemoArguments) -> Path:
    stage2 = _train(out, "stage2", _stage2_recipe(out, args))
    if args.stage2 == "full":
        return stage2
    from . import merge_lora

    merged = out / "stage2-merged"
    if merge_lora.main(["--adapter_path", str(stage2), "--output_dir", str(merged)]) != 0:
        raise RuntimeError("merge-lora failed")
    return merged


def _losses(run_dir: Path) -> tuple[list[float], float | None]:
    """The logged training losses and the run time in seconds."""
    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    runtime = next((entry["train_runtime"] for entry in history if "train_runtime" in entry), None)
    return [entry["loss"] for entry in history if "loss" in entry], runtime


def _loss_note(run_dir: Path) -> str:
    losses, runtime = _losses(run_dir)
    if not losses:
        return "no loss logged"
    per_step = f", {runtime / len(losses):.2f} s/step" if runtime else ""
    return f"{len(losses)} steps{per_step}, loss {losses[0]:.3f} -> {losses[-1]:.3f}"


def _save_untrained(out: Path, args: DemoArguments) -> Path:
    """The model stage 1 starts from (same parts, same projector init), saved for the untrained baseline."""
    from trl import ModelConfig

    from ..training.model_setup import load_model_and_processor
    from ..training.sft import StageArguments

    stage = StageArguments(stage="instruct", vision_model_name_or_path=str(out / "base" / "vision"),
                           text_model_name_or_path=str(out / "base" / "lm"))
    model, processor = load_model_and_processor(ModelConfig(dtype="float32"), stage)
    folder = out / "untrained"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _run_eval(out_dir: Path, model_dir: Path, data_dir: Path, config: str) -> dict:
    from . import eval as eval_command

    argv = ["--output_dir", str(out_dir), "--dataset_name", str(data_dir), "--dataset_config", config,
            "--dataset_split", "test", "--model_name_or_path", str(model_dir), "--max_new_tokens", "16",
            "--batch_size", "16", "--benchmark_name", "hf_medvlm demo eval (held-out question types)",
            "--dtype", "float32"]
    if eval_command.main(argv) != 0:
        raise RuntimeError(f"evaluation of {model_dir.name} on {config} failed")
    return json.loads((out_dir / "results.json").read_text())


def _evaluate_against_baselines(out: Path, args: DemoArguments, final: Path, data_dir: Path) -> dict:
    """Trained model vs the majority answer and the untrained model on the same held-out questions, plus the
    image-swap control; returns the score columns, the grounding verdict and the model-index of the trained run."""
    from ..eval.baselines import changed_answers, grounding_verdict, majority_answers
    from ..eval.benchmark import load_eval_dataset, questions_from_dataset, read_answers, score_answers

    trained = _run_eval(out / "eval", final, data_dir, "eval")
    untrained = _run_eval(out / "eval_untrained", _save_untrained(out, args), data_dir, "eval")
    swapped = _run_eval(out / "eval_mismatched_images", final, data_dir, "eval_mismatched_images")
    questions, _ = questions_from_dataset(load_eval_dataset(str(data_dir), "eval", "test"), "vqa")
    majority = score_answers(questions, majority_answers(questions), "vqa", ["llava_med", "strict"])
    answers = read_answers(out / "eval" / "answers.jsonl")
    changed = changed_answers(answers, read_answers(out / "eval_mismatched_images" / "answers.jsonl"))
    commonest = Counter(str(a["text"]) for a in answers.values()).most_common(1)[0]
    grounded, evidence = grounding_verdict(trained["scores"], swapped["scores"], changed, len(questions))
    return {
        "columns": {"majority": majority, "untrained": untrained["scores"], "trained": trained["scores"],
                    "trained, swapped images": swapped["scores"]},
        "num_questions": len(questions), "grounded": grounded, "evidence": evidence, "changed": changed,
        "commonest_answer": commonest, "loss": _losses(out / "stage2")[0],
        "model_index": json.loads((out / "eval" / "model_index.json").read_text()),
    }


def _score_note(scores_by_protocol: dict) -> str:
    parts = []
    # llava_med reports open recall (the paper's "Open" column); strict reports exact match and token F1.
    for protocol, scores in scores_by_protocol.items():
        open_key = "open_recall" if protocol == "llava_med" else "open_f1"
        parts.append(f"{protocol}: closed acc {_pct(scores.get('closed_accuracy'))}, "
                     f"{open_key.replace('_', ' ')} {_pct(scores.get(open_key))}")
    return "; ".join(parts)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"  # results.json reports percentages


def _what_it_shows(comparison: dict) -> str:
    from ..data.demo import HELD_OUT_QUESTION_TYPES
    from ..eval.baselines import HEADLINE_METRICS, comparison_table

    held_out = ", ".join(HELD_OUT_QUESTION_TYPES)
    loss = comparison["loss"] or [float("nan")]
    text, count = comparison["commonest_answer"]
    columns = comparison["columns"]
    gained = any((columns["trained"].get(p, {}).get(m) or 0) > (columns["untrained"].get(p, {}).get(m) or 0)
                 for p, m, _ in HEADLINE_METRICS)
    if comparison["grounded"]:
        verdict = "The answers depend on the image: image-grounded learning is shown on a question type never asked " \
                  "in training."
    elif gained:
        verdict = "No image-grounded learning is shown: what the trained model gains over the untrained one comes " \
                  "from the answer format and the answer distribution, not from the image."
    else:
        verdict = "No image-grounded learning is shown, and training changed no score on these held-out questions " \
                  "(the loss fell on the training conversations only)."
    if not comparison["grounded"] and comparison["changed"]:
        verdict += " The answers do react to the image, but they are no more right with the right one."
    return "\n".join([
        "",
        f"Scores on the {comparison['num_questions']} eval questions (question type: {held_out}; never asked in "
        "training, in any wording; in training the modality appears only inside the image descriptions):",
        comparison_table(comparison["columns"]),
        "  majority: every closed question answered with the commonest closed answer, every open one with the "
        "commonest open answer.",
        "  untrained: the model stage 1 starts from. trained, swapped images: the same questions, each shown an "
        "image of another modality.",
        "",
        f"What a tiny random model can learn here: the phrases of its training conversations (stage-2 loss "
        f"{loss[0]:.1f} -> {loss[-1]:.1f}). Asked what it never was, it answers with them: its commonest answer "
        f"is {text!r} ({count} of {comparison['num_questions']}).",
        f"What it cannot: read medical images. Its vision tower is random and frozen, it sees 14 images for "
        f"{len(comparison['loss'])} small steps, and the scores above are on those same images. Real skill needs the "
        "real checkpoints (docs/demo.md).",
        f"Image grounding: {comparison['evidence']}. {verdict}",
    ])


def _write_model_card(model_dir: Path, args: DemoArguments, out: Path, eval_results: list[dict]) -> None:
    write_model_card(
        model_dir, repo_id=args.model_repo_id, datasets=[args.dataset_repo_id],
        licenses={args.dataset_repo_id: "other"}, recipe_path=str(out / "recipes" / "stage2.yaml"),
        resolved_config=out / "stage2" / "resolved_config.yaml", eval_results=eval_results,
        summary="A small random LlavaMed trained by `hf-medvlm demo` on the embedded demo set: a workflow "
                "check, not a medical model.",
    )


def _push(args: DemoArguments, model_dir: Path, data_dir: Path, note) -> str:
    if args.hub == "none":
        note("skipped (--hub none); loading the local checkpoint")
        return str(model_dir)
    push_model(model_dir, args.model_repo_id)
    push_dataset_folder(data_dir, args.dataset_repo_id)
    note(f"{args.model_repo_id} and {args.dataset_repo_id} on {constants.ENDPOINT}")
    return args.model_repo_id


def _answer_one_question(model_ref: str, data_dir: Path) -> tuple[str, str, str]:
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor

    row = load_dataset(str(data_dir), name="eval", split="test")[0]
    model = AutoModelForImageTextToText.from_pretrained(model_ref, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(model_ref)
    messages = [{"role": "user", "content": [{"type": "image", "image": row["image"]},
                                             {"type": "text", "text": row["question"]}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    answer = processor.decode(generated[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    return row["question"], answer, row["answer"]


@contextmanager
def _step(rows: list, name: str):
    """Prints the step's banner, yields a function that adds a note, and appends (name, seconds, notes) to `rows`."""
    notes: list[str] = []
    print(f"\n=== hf-medvlm demo: {name}", flush=True)
    started = time.perf_counter()
    yield notes.append
    rows.append((name, time.perf_counter() - started, " ".join(notes)))


def _print_summary(rows: list[tuple[str, float, str]], total: float) -> None:
    width = max(len(name) for name, _, _ in rows)
    print("\nhf-medvlm demo summary")
    print(f"{'step'.ljust(width)}  {'time':>7}  result")
    for name, seconds, note in rows:
        print(f"{name.ljust(width)}  {seconds:6.1f}s  {note}")
    print(f"{'total'.ljust(width)}  {total:6.1f}s")
