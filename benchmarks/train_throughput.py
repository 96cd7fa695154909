"""Stage-2 training throughput: our path vs TRL's stock VLM path, same model size, same data, same loss.

  stock: transformers `LlavaForConditionalGeneration` + TRL `SFTTrainer` + its default collator and random sampler.
  ours:  `LlavaMedForConditionalGeneration` + `MedVLMSFTTrainer` with `group_by_modality_length` (what
         `hf-medvlm train` runs for the stage-2 recipes).
Both: vision tower frozen, assistant-only loss with the `mistral_instruct` template, AdamW, fp32 on CPU (bf16 on CUDA), same seed.

Model: "tiny but not trivial": CLIP tower 128-d x 2 layers at 64 px / patch 8 (64 image tokens), Mistral LM 256-d x
4 layers, 32k vocabulary. Data: the stand-in length mix of benchmarks/padding.py scaled to 64 image tokens (85% image
conversations with median 200 text tokens, 15% text-only with median 500). Each path runs in its own process so that
peak RSS is its own.

    python -m benchmarks.train_throughput [--samples 256 --batch_size 8]      (from the repository root)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

IMAGE_SIZE, PATCH = 64, 8


def model_config_kwargs() -> dict:
    return dict(
        vision_config=dict(model_type="clip_vision_model", hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                           num_attention_heads=4, image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=128),
        text_config=dict(model_type="mistral", hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4, vocab_size=32064, max_position_embeddings=4096,
                         sliding_window=None, bos_token_id=1, eos_token_id=2, pad_token_id=32001,
                         tie_word_embeddings=False),
        image_token_index=32000,
    )


def build_dataset(num: int, seed: int = 0):
    import datasets
    from PIL import Image

    rng = np.random.default_rng(seed)
    words = "the left lower lobe shows a small opacity consistent with consolidation no effusion is seen".split()
    rows = []
    for i in range(num):
        has_image = rng.random() < 0.85
        text_tokens = int(np.clip(rng.lognormal(np.log(200 if has_image else 500), 0.6 if has_image else 0.8), 20, 1400))
        # About one token per word: split between a question and an answer.
        answer = " ".join(rng.choice(words, size=max(4, text_tokens * 2 // 3)))
        question = " ".join(rng.choice(words, size=max(4, text_tokens // 3))) + "?"
        user = ([{"type": "image", "text": None}] if has_image else []) + [{"type": "text", "text": question}]
        image = Image.fromarray(rng.integers(0, 255, (48, 56, 3), dtype=np.uint8))
        rows.append({"images": [image] if has_image else [], "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]})
    return datasets.Dataset.from_list(rows)


class CountingCollator:
    """Wraps a collator to count real and pad tokens; the wrapped collator's output is returned unchanged."""

    def __init__(self, collator):
        self.collator, self.real, self.padded, self.samples = collator, 0, 0, 0

    def __call__(self, examples):
        batch = self.collator(examples)
        mask = batch["attention_mask"]
        self.real += int(mask.sum())
        self.padded += int(mask.numel())
        self.samples += len(examples)
        return batch


def run_path(path: str, samples: int, batch_size: int) -> dict:
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from trl import SFTConfig, SFTTrainer

    from hf_medvlm.models.llava_med import LlavaMedConfig, LlavaMedForConditionalGeneration, load_chat_template
    from hf_medvlm.testing import build_tiny_llava_med
    from hf_medvlm.training.trainer import MedVLMSFTTrainer

    _, tiny_processor = build_tiny_llava_med()
    tokenizer = tiny_processor.tokenizer
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    args = SFTConfig(output_dir=f"/tmp/throughput-{path}", per_device_train_batch_size=batch_size,
                     max_steps=samples // batch_size, learning_rate=2e-5, max_length=None, assistant_only_loss=True,
                     bf16=cuda, use_cpu=not cuda, activation_checkpointing=False, logging_steps=1000,
                     save_strategy="no", report_to="none", seed=0, dataloader_num_workers=0)
    dataset = build_dataset(samples)
    if path == "stock":
        from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

        model = LlavaForConditionalGeneration(LlavaConfig(**model_config_kwargs()))
        processor = LlavaProcessor(
            image_processor=LlavaImageProcessorPil(size={"shortest_edge": IMAGE_SIZE},
                                                   crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
            tokenizer=tokenizer, patch_size=PATCH, vision_feature_select_strategy="default",
            chat_template=load_chat_template("mistral_instruct"), num_additional_image_tokens=1)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    else:
        from hf_medvlm.models.llava_med.processing_llava_med import LlavaMedProcessor

        model = LlavaMedForConditionalGeneration(LlavaMedConfig(**model_config_kwargs()))
        processor = LlavaMedProcessor.from_tokenizer(tokenizer, image_size=IMAGE_SIZE, patch_size=PATCH,
                                                     chat_template="mistral_instruct")
        trainer = MedVLMSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor,
                                   group_by_modality_length=True)
    model.model.vision_tower.requires_grad_(False)  # stage 2 freezes the tower, on both paths
    trainer.data_collator = counter = CountingCollator(trainer.data_collator)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {
        "path": path, "seconds": seconds, "samples_per_s": counter.samples / seconds,
        "tokens_per_s": counter.real / seconds, "pad_fraction": 1 - counter.real / counter.padded,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--path", choices=["stock", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        print("RESULT " + json.dumps(run_path(args.path, args.samples, args.batch_size)))
        return
    results = {}
    for path in ("stock", "ours"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.train_throughput", "--path", path, "--samples",
                              str(args.samples), "--batch_size", str(args.batch_size)],
                             capture_output=True, text=True, check=True).stdout
        results[path] = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
    print(f"{'path':6s} {'samples/s':>10s} {'tokens/s':>10s} {'pad frac':>9s} {'peak RSS MB':>12s} {'seconds':>8s}")
    for r in results.values():
        print(f"{r['path']:6s} {r['samples_per_s']:10.2f} {r['tokens_per_s']:10.0f} {r['pad_fraction']:9.1%} "
              f"{r['peak_rss_mb']:12.0f} {r['seconds']:8.1f}")
    print(f"ours / stock samples/s ratio: {results['ours']['samples_per_s'] / results['stock']['samples_per_s']:.2f}")


if __name__ == "__main__":
    main()
