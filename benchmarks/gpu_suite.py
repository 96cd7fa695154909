"""One prepared GPU benchmark: stage-2 training throughput (this package's recipe vs stock TRL) and eval generation
throughput (batched vs one at a time), with peak memory, printed side by side. Budget: <= 8 minutes on one GPU.

    python benchmarks/gpu_suite.py                  # CUDA: the 7B shape, bf16 (what benchmarks/README.md asks for)
    python benchmarks/gpu_suite.py --shape tiny     # any machine: a tiny shape on CPU, under a minute (a test runs it)

Training, both paths on the same random-weight model shape, the same data and the same frozen vision tower (stage 2):
  ours:  recipes/llava-med-v1.5-mistral-7b/stage2/full.yaml (or lora.yaml) parsed by `hf-medvlm train`'s parser,
         its throughput keys resolved for this machine (attn auto, Liger, fused AdamW, non-reentrant checkpointing),
         `LlavaMedForConditionalGeneration` + `MedVLMSFTTrainer` with modality length grouping;
  stock: `LlavaForConditionalGeneration` + TRL `SFTTrainer` with `SFTConfig` defaults (plus max_length=None, which
         VLMs need, and bf16 / use_cpu for the device).
Shapes: 7b = Mistral-7B text config + CLIP ViT-L/14-336 tower + mlp2x_gelu projector (LLaVA-Med v1.5); 1b = a
TinyLlama-1.1B-shaped LM with the same tower; tiny = a few-million-parameter model for CPU.
Data: real images (the package's embedded demo images, resized by the processor to the tower's size, 576 image tokens
at 336 px) with LLaVA-Med-like text lengths (the stand-in of benchmarks/padding.py: log-normal, median 200 tokens).
MFU = achieved model FLOPs / peak bf16 FLOPs of the GPU, counting 6 x N x tokens for the trainable LM and projector
(N without the input embedding) plus 2 x N_tower x patches for the frozen tower's forward; attention score FLOPs and
checkpointing recompute are not counted (so it is MFU, not hardware utilisation).
Full fine-tuning of 7B needs ~8 bytes per parameter (bf16 weights, gradients, AdamW states) plus activations; with
`--finetune auto` a GPU with less memory than that runs LoRA (r 128, the lora.yaml recipe) instead, and says so.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "llava-med-v1.5-mistral-7b" / "stage2"

CLIP_L14_336 = dict(model_type="clip_vision_model", hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                    num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768)
MISTRAL_7B = dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768, rope_theta=1e6,
                  rms_norm_eps=1e-5, sliding_window=None)
# shape -> model config, per-device batch, steps (warm-up + measured), eval questions, text-length median, batched
# generate() sizes, new tokens per answer
SHAPES = {
    "7b": dict(text=MISTRAL_7B, vision=CLIP_L14_336, batch=4, warmup=2, steps=8, questions=64, text_median=200,
               generate_batches=[16, 64], new_tokens=32),
    "1b": dict(text=dict(MISTRAL_7B, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                         num_key_value_heads=4), vision=CLIP_L14_336, batch=8, warmup=2, steps=8, questions=64,
               text_median=200, generate_batches=[16, 64], new_tokens=32),
    "tiny": dict(text=dict(MISTRAL_7B, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2),
                 vision=dict(CLIP_L14_336, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, image_size=56, projection_dim=32),
                 batch=2, warmup=1, steps=1, questions=4, text_median=24, generate_batches=[4], new_tokens=4),
}
# Dense bf16 peak TFLOPs by device-name fragment (vendor data sheets); --peak_tflops overrides.
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "L40": 181.0,
                    "A10G": 125.0, "A10": 125.0, "L4": 121.0, "RTX 4090": 165.2, "A6000": 154.8}


# --------------------------------------------------------------------------------------------- model and data


def model_config_kwargs(shape: str) -> dict:
    spec = SHAPES[shape]
    text = dict(spec["text"], vocab_size=32064, bos_token_id=1, eos_token_id=2, pad_token_id=32001,
                tie_word_embeddings=False)
    return dict(vision_config=dict(spec["vision"]), text_config=text, image_token_index=32000)


def build_model(path: str, shape: str, dtype, device, attn_implementation: str | None):
    """A random-weight model of `shape`, created directly on `device` in `dtype` (no checkpoint on disk)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    from hf_medvlm.models.llava_med import LlavaMedConfig, LlavaMedForConditionalGeneration

    config_cls, model_cls = ((LlavaConfig, LlavaForConditionalGeneration) if path == "stock"
                             else (LlavaMedConfig, LlavaMedForConditionalGeneration))
    config = config_cls(**model_config_kwargs(shape))
    torch.manual_seed(0)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with torch.device(device):
        model = model_cls._from_config(config, dtype=dtype, **kwargs)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = 2, 32001
    return model


def build_processor(path: str, shape: str):
    from transformers import LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    from hf_medvlm.models.llava_med import LlavaMedProcessor, load_chat_template
    from hf_medvlm.testing import load_llama2_tokenizer

    vision = SHAPES[shape]["vision"]
    size, patch = vision["image_size"], vision["patch_size"]
    if path != "stock":
        return LlavaMedProcessor.from_tokenizer(load_llama2_tokenizer(), image_size=size, patch_size=patch,
                                                image_aspect_mode="pad", chat_template="mistral_instruct")
    return LlavaProcessor(
        image_processor=LlavaImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=load_llama2_tokenizer(), patch_size=patch, vision_feature_select_strategy="default",
        chat_template=load_chat_template("mistral_instruct"), num_additional_image_tokens=1)


def demo_images() -> list:
    from hf_medvlm.data.demo import load_demo_facts

    return [facts.image for facts in load_demo_facts(max_side=512)]


def build_dataset(num: int, shape: str, seed: int = 0):
    """`num` image conversations: a real demo image, a question and an answer of LLaVA-Med-like length."""
    import datasets

    rng = np.random.default_rng(seed)
    images = demo_images()
    words = "the left lower lobe shows a small opacity consistent with consolidation no effusion is seen".split()
    median = SHAPES[shape]["text_median"]
    rows = []
    for i in range(num):
        length = int(np.clip(rng.lognormal(np.log(median), 0.6), max(8, median // 10), 7 * median))
        question = " ".join(rng.choice(words, size=max(3, length // 3))) + "?"
        answer = " ".join(rng.choice(words, size=max(3, length * 2 // 3)))
        rows.append({"images": [images[i % len(images)]], "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": question}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]})
    return datasets.Dataset.from_list(rows)


# --------------------------------------------------------------------------------------------- FLOPs and memory


def model_flops(model, tokens: int, images: int) -> float:
    """6 N tokens for the LM + projector (no input embedding), 2 N patches for the frozen tower's forward. With LoRA
    the same count (an overestimate of the work: the frozen weights get no weight gradients)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    tower = sum(p.numel() for p in inner.model.vision_tower.parameters())
    embed = inner.get_input_embeddings().weight.numel()
    lm = sum(p.numel() for p in inner.model.language_model.parameters()) - embed + inner.lm_head.weight.numel()
    projector = sum(p.numel() for p in inner.model.multi_modal_projector.parameters())
    vision = inner.config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2 + 1
    return 6.0 * (lm * tokens + projector * images * (patches - 1)) + 2.0 * tower * images * patches


def peak_tflops(override: float | None) -> float | None:
    if override:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((value for key, value in PEAK_BF16_TFLOPS.items() if key in name), None)


def reset_peak() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib() -> float | None:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return None


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------- training


def _recipe_args(finetune: str, shape: str, output_dir: str, cuda: bool):
    from hf_medvlm.commands.train import parse_args

    spec = SHAPES[shape]
    recipe = RECIPES / ("lora.yaml" if finetune == "lora" else "full.yaml")
    overrides = ["--model_name_or_path", "random-weights", "--output_dir", output_dir, "--report_to", "none",
                 "--max_steps", str(spec["warmup"] + spec["steps"]), "--per_device_train_batch_size",
                 str(spec["batch"]), "--gradient_accumulation_steps", "1", "--save_strategy", "no",
                 "--logging_steps", "1000"]
    if not cuda:  # float32 like the stock path on CPU (no bf16 autocast there)
        overrides += ["--use_cpu", "true", "--dataloader_num_workers", "0", "--bf16", "false", "--dtype", "float32"]
    parsed = parse_args(["--config", str(recipe), *overrides])
    parsed[2].include_num_input_tokens_seen = "non_padding"  # a str | bool field that the CLI parser reads as bool
    return recipe, parsed


def _stock_args(shape: str, output_dir: str, cuda: bool):
    from trl import SFTConfig

    spec = SHAPES[shape]
    return SFTConfig(output_dir=output_dir, per_device_train_batch_size=spec["batch"],
                     max_steps=spec["warmup"] + spec["steps"], max_length=None, bf16=cuda, use_cpu=not cuda,
                     save_strategy="no", report_to="none", logging_steps=1000,
                     include_num_input_tokens_seen="non_padding", dataloader_num_workers=0 if not cuda else 4)


def _step_timer(warmup: int):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time and non-padding tokens of the steps after `warmup` (CUDA synchronised at each step end)."""

        def __init__(self):
            self.marks = []

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

        def measured(self):
            (t0, n0), (t1, n1) = self.marks[warmup - 1], self.marks[-1]
            return t1 - t0, n1 - n0, len(self.marks) - warmup

    return StepTimer()


def _ours_trainer(shape: str, finetune: str, dataset, device, output_dir: str):
    from hf_medvlm.training.acceleration import resolve_training_acceleration
    from hf_medvlm.training.model_setup import freeze_modules, lora_config_for
    from hf_medvlm.training.trainer import MedVLMSFTTrainer

    recipe, (_, _, training, model_args, stage) = _recipe_args(finetune, shape, output_dir, device.type == "cuda")
    resolve_training_acceleration(training, model_args)
    model = build_model("ours", shape, getattr(torch, model_args.dtype), device, model_args.attn_implementation)
    freeze_modules(model, stage.freeze_modules)
    trainer = MedVLMSFTTrainer(model=model, args=training, train_dataset=dataset,
                               processing_class=build_processor("ours", shape),
                               peft_config=lora_config_for(model, model_args) if model_args.use_peft else None,
                               group_by_modality_length=stage.group_by_modality_length,
                               projector_lr=stage.projector_lr)
    settings = (f"{recipe.relative_to(ROOT)}: attn {model.config._attn_implementation}, liger "
                f"{trainer.liger_kernels_applied}, optim {training.optim.value}, checkpointing "
                f"{training.activation_checkpointing} {training.activation_checkpointing_kwargs or ''}, compile "
                f"{training.torch_compile}, length grouping {stage.group_by_modality_length}")
    return trainer, settings


def _stock_trainer(shape: str, finetune: str, dataset, device, output_dir: str):
    from trl import SFTTrainer

    from hf_medvlm.training.model_setup import lora_config_for

    args = _stock_args(shape, output_dir, device.type == "cuda")
    model = build_model("stock", shape, torch.bfloat16 if device.type == "cuda" else torch.float32, device, None)
    model.model.vision_tower.requires_grad_(False)  # stage 2 freezes the tower, on both paths
    peft_config = None
    if finetune == "lora":
        from trl import ModelConfig

        peft_config = lora_config_for(model, ModelConfig(use_peft=True, lora_r=128, lora_alpha=256,
                                                         lora_dropout=0.05))
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=build_processor("stock", shape),
                         peft_config=peft_config)
    settings = (f"SFTConfig defaults: attn {model.config._attn_implementation}, optim {args.optim.value}, "
                f"checkpointing {args.gradient_checkpointing}, random sampler")
    return trainer, settings


def train_part(path: str, shape: str, finetune: str, peak: float | None) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    spec = SHAPES[shape]
    dataset = build_dataset(spec["batch"] * (spec["warmup"] + spec["steps"]) * 2, shape)
    reset_peak()
    with tempfile.TemporaryDirectory() as output_dir:
        make = _ours_trainer if path == "ours" else _stock_trainer
        trainer, settings = make(shape, finetune, dataset, device, output_dir)
        timer = _step_timer(spec["warmup"])
        trainer.add_callback(timer)
        trainer.train()
        seconds, tokens, steps = timer.measured()
        flops = model_flops(trainer.model, tokens, steps * spec["batch"]) / seconds
    return {"path": path, "settings": settings, "step_s": seconds / steps, "tokens_per_s": tokens / seconds,
            "mfu": flops / (peak * 1e12) if peak else None, "peak_gib": peak_memory_gib(),
            "tflops": flops / 1e12}


# --------------------------------------------------------------------------------------------- generation


def generate_part(shape: str, batch_sizes: list[int], max_new_tokens: int) -> dict:
    from hf_medvlm.eval.generation import GenerationSettings, generate_answers

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = build_model("ours", shape, dtype, device, "sdpa").eval()
    model.generation_config.eos_token_id = None  # every answer is exactly max_new_tokens long: a fair token count
    processor = build_processor("ours", shape)
    images = demo_images()
    n = SHAPES[shape]["questions"]
    questions = [f"What does image {i} show? Describe the findings." for i in range(n)]
    image_lists = [[images[i % len(images)]] for i in range(n)]
    results = {}
    for batch in [1, *batch_sizes]:
        reset_peak()
        settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch)
        generate_answers(model, processor, questions[:batch], image_lists[:batch], settings, progress=False)  # warm-up
        sync()
        start = time.perf_counter()
        answers = generate_answers(model, processor, questions, image_lists, settings, progress=False)
        sync()
        seconds = time.perf_counter() - start
        results[batch] = {"seconds": seconds, "tokens_per_s": n * max_new_tokens / seconds,
                          "peak_gib": peak_memory_gib(), "answers": answers}
    single = results[1]["answers"]
    return {"questions": n, "max_new_tokens": max_new_tokens, "by_batch": {
        b: dict({k: v for k, v in r.items() if k != "answers"}, same_as_single=sum(
            a == s for a, s in zip(r["answers"], single))) for b, r in results.items()}}


# --------------------------------------------------------------------------------------------- driver


def choose_finetune(requested: str, shape: str) -> tuple[str, str]:
    if requested != "auto":
        return requested, "as requested"
    if not torch.cuda.is_available():
        return "full", "CPU"
    params = sum(np.prod(s) for s in _param_shapes(shape))
    need = params * 8 / 2**30 + 12  # bf16 weights + grads + bf16 AdamW states, plus activations and workspace
    total = torch.cuda.get_device_properties(0).total_memory / 2**30
    if need <= 0.95 * total:
        return "full", f"needs ~{need:.0f} GiB of {total:.0f} GiB"
    return "lora", f"full fine-tuning needs ~{need:.0f} GiB, more than this GPU's {total:.0f} GiB"


def _param_shapes(shape: str) -> list[tuple[int, ...]]:
    model = build_model("ours", shape, torch.bfloat16, "meta", None)  # shapes only, no memory
    return [tuple(p.shape) for p in model.parameters()]


def run_isolated(part: str, args) -> dict:
    """Run one part in its own process (on GPU: its own peak memory, nothing left over from the previous part)."""
    command = [sys.executable, __file__, "--part", part, "--shape", args.shape, "--finetune", args.finetune,
               "--max_new_tokens", str(args.max_new_tokens), "--batch_sizes", *map(str, args.batch_sizes)]
    if args.peak_tflops:
        command += ["--peak_tflops", str(args.peak_tflops)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"part {part} failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])


def run_part(part: str, args) -> dict:
    peak = peak_tflops(args.peak_tflops)
    if part == "generate":
        return generate_part(args.shape, args.batch_sizes, args.max_new_tokens)
    return train_part(part, args.shape, args.finetune, peak)


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_report(args, reason: str, train: dict, generation: dict, seconds: float) -> None:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (no GPU: tiny shape only)"
    peak = peak_tflops(args.peak_tflops)
    print(f"\nhf_medvlm GPU suite: {device}; shape {args.shape}; fine-tuning {args.finetune} ({reason}); peak bf16 "
          f"{_fmt(peak, '.0f')} TFLOPs; torch {torch.__version__}")
    print("\nstage-2 training step (same model shape, data, frozen tower)")
    print(f"{'path':6s} {'s/step':>8s} {'tokens/s':>10s} {'TFLOPs':>8s} {'MFU':>6s} {'peak GiB':>9s}  settings")
    for r in train.values():
        print(f"{r['path']:6s} {r['step_s']:8.3f} {r['tokens_per_s']:10.0f} {r['tflops']:8.2f} "
              f"{_fmt(r['mfu'], '6.1%')} {_fmt(r['peak_gib'], '9.1f')}  {r['settings']}")
    print(f"ours / stock tokens/s: {train['ours']['tokens_per_s'] / train['stock']['tokens_per_s']:.2f}x")
    single = generation["by_batch"]["1"]
    print(f"\neval generation: {generation['questions']} questions x {generation['max_new_tokens']} new tokens")
    print(f"{'batch':>6s} {'seconds':>8s} {'tokens/s':>10s} {'speed-up':>9s} {'peak GiB':>9s} {'same as batch 1':>16s}")
    for batch, r in generation["by_batch"].items():
        print(f"{batch:>6s} {r['seconds']:8.2f} {r['tokens_per_s']:10.1f} {single['seconds'] / r['seconds']:8.1f}x "
              f"{_fmt(r['peak_gib'], '9.1f')} {r['same_as_single']:>10d}/{generation['questions']}")
    print(f"\ntotal {seconds:.0f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=list(SHAPES), help="default: 7b with CUDA, tiny without")
    parser.add_argument("--finetune", choices=["auto", "full", "lora"], default="auto")
    parser.add_argument("--batch_sizes", type=int, nargs="+", help="batched generate() sizes (7b/1b: 16 64)")
    parser.add_argument("--max_new_tokens", type=int, help="new tokens per answer (7b/1b: 32)")
    parser.add_argument("--peak_tflops", type=float, help="peak bf16 TFLOPs of the GPU, when not in the table")
    parser.add_argument("--part", choices=["ours", "stock", "generate"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.shape = args.shape or ("7b" if torch.cuda.is_available() else "tiny")
    args.batch_sizes = args.batch_sizes or SHAPES[args.shape]["generate_batches"]
    args.max_new_tokens = args.max_new_tokens or SHAPES[args.shape]["new_tokens"]
    if args.part:
        print("RESULT " + json.dumps(run_part(args.part, args)))
        return 0
    start = time.perf_counter()
    args.finetune, reason = choose_finetune(args.finetune, args.shape)
    run = run_isolated if torch.cuda.is_available() else run_part
    train = {path: run(path, args) for path in ("stock", "ours")}
    generation = json.loads(json.dumps(run("generate", args)))  # the same str keys in-process and isolated
    print_report(args, reason, train, generation, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
