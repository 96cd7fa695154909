"""Row lengths and length grouping per model family, with each processor's real image token count.

Processors at the real checkpoints' image geometry (offline: the tiny families' tokenizers and chat templates, the
real image-processor settings): LlavaMed v1.5 (CLIP-336/14: 576 per image), Qwen2.5-VL (patch 14, 2x2 merge) at
HuatuoGPT-Vision's max_pixels 151,200 and at Qwen's default 12,845,056, SmolVLM-Instruct (384 px tiles of 81 tokens)
at longest edge 768 and 1536, Gemma 3 / MedGemma (896 px, 256 soft tokens).

Stand-in rows (documented, not measured on the real files, whose images are not available offline): PubMedVision-
shaped as in benchmarks/length_pass.py (one round; 78% one image, else 2 + geometric(0.35) capped at 29; answer
log-normal, median 180 words); image sizes log-normal, median 700 x 560 px (sigma 0.5 on each side, clipped 64..4000),
the spread of PMC figure panels (an assumption). Each row is measured by the length pass (`measure`, no image decoded,
sizes read from PNG headers); pad fractions compare TRL's random order with `ModalityLengthGroupedSampler` for 8 GPUs x
2 per GPU x accumulation 8, each device batch right-padded to its longest row.

    python -m benchmarks.family_lengths [--rows 3000]      (from the repository root)
"""

from __future__ import annotations

import argparse
import io
import time

import datasets
import numpy as np
import torch
from PIL import Image

from hf_medvlm.data.schema import TRAINING_FEATURES
from hf_medvlm.training.image_tokens import ImageExpansion
from hf_medvlm.training.length_policy import measure
from hf_medvlm.training.sampler import ModalityLengthGroupedSampler, padded_tokens

WORDS = "the lesion shows a hyperintense signal in the left lobe with mild oedema and no mass effect".split()
PER_DEVICE, WORLD, ACCUMULATION = 2, 8, 8


def processors() -> dict:
    from transformers import Gemma3ImageProcessorPil, Gemma3Processor, Idefics3ImageProcessorPil, Idefics3Processor
    from transformers import Qwen2VLImageProcessorPil

    from hf_medvlm.testing import build_tiny_llava_med
    from hf_medvlm.testing.families import build_tiny_gemma3, build_tiny_qwen2_5_vl, build_tiny_smolvlm

    llava = build_tiny_llava_med(vision_config=dict(image_size=336, patch_size=14))[1]
    qwen = build_tiny_qwen2_5_vl()[1]
    smol, gemma = build_tiny_smolvlm()[1], build_tiny_gemma3()[1]
    found = {"LlavaMed v1.5 (CLIP-336/14)": llava}
    for max_pixels in (151200, 12845056):
        copy = type(qwen)(image_processor=Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2,
                                                                   min_pixels=3136, max_pixels=max_pixels),
                          tokenizer=qwen.tokenizer, video_processor=qwen.video_processor,
                          chat_template=qwen.chat_template)
        found[f"Qwen2.5-VL, max_pixels {max_pixels:,}"] = copy
    for edge in (768, 1536):
        image_processor = Idefics3ImageProcessorPil(size={"longest_edge": edge}, max_image_size={"longest_edge": 384})
        found[f"SmolVLM, longest edge {edge}"] = Idefics3Processor(
            image_processor=image_processor, tokenizer=smol.tokenizer, image_seq_len=81,
            chat_template=smol.chat_template)
    found["Gemma 3 / MedGemma (896 px)"] = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": 896, "width": 896}), tokenizer=gemma.tokenizer,
        image_seq_length=256, chat_template=gemma.chat_template)
    return found


def png(width: int, height: int, cache: dict) -> bytes:
    if (width, height) not in cache:
        buffer = io.BytesIO()
        Image.new("L", (width, height)).save(buffer, format="PNG")
        cache[(width, height)] = buffer.getvalue()
    return cache[(width, height)]


def stand_in_rows(n: int, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    counts = np.where(rng.random(n) >= 0.78, np.minimum(2 + rng.geometric(0.35, n) - 1, 29), 1)
    words = np.clip(rng.lognormal(np.log(180), 0.5, n), 20, 900).astype(int)
    cache, rows = {}, []
    for i, (k, w) in enumerate(zip(counts.tolist(), words.tolist())):
        sizes = np.clip(rng.lognormal(np.log([700, 560]), 0.5, (k, 2)), 64, 4000).astype(int) // 8 * 8
        images = [{"bytes": png(int(x), int(y), cache), "path": None} for x, y in sizes]
        question = [{"type": "image", "text": None}] * k + [{"type": "text", "text": "Describe the images."}]
        answer = " ".join(WORDS[j % len(WORDS)] for j in range(w))
        messages = [{"role": "user", "content": question},
                    {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
        rows.append({"id": f"row-{i}", "images": images, "messages": messages})
    features = datasets.Features({k: TRAINING_FEATURES[k] for k in ("id", "images", "messages")})
    return datasets.Dataset.from_list(rows, features=features)


def pad_fractions(lengths: list[int]) -> tuple[float, float]:
    """(random, grouped) pad fraction; every stand-in row has an image, so grouping is by length only."""
    step = PER_DEVICE * WORLD * ACCUMULATION
    random_order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    grouped = list(ModalityLengthGroupedSampler(lengths, [True] * len(lengths), step, seed=0))
    fractions = []
    for order in (random_order, grouped):
        pad, total = padded_tokens(lengths, [order[i : i + PER_DEVICE] for i in range(0, len(order), PER_DEVICE)])
        fractions.append(pad / total)
    return fractions[0], fractions[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    args = parser.parse_args(argv)
    dataset = stand_in_rows(args.rows)
    print(f"{args.rows} PubMedVision-shaped rows, {sum(len(r) for r in dataset['images'])} images")
    print(f"{'processor':38s} {'tok/img p5-p50-p95':>20s} {'row p50':>8s} {'p95':>7s} {'>4096':>6s} "
          f"{'pad random':>11s} {'grouped':>8s} {'rows/s':>7s}")
    sizes = [(h, w) for images in dataset.cast_column("images", datasets.List(datasets.Image(decode=False)))["images"]
             for h, w in [(Image.open(io.BytesIO(i["bytes"])).size[::-1]) for i in images]]
    for name, processor in processors().items():
        expansion = ImageExpansion(processor)
        per_image = [len(expansion.ids(s)) for s in sizes[:2000]]
        start = time.perf_counter()
        lengths, _ = measure(dataset, processor, expansion=expansion)
        rate = len(lengths) / (time.perf_counter() - start)
        random_pad, grouped_pad = pad_fractions(lengths)
        p5, p50, p95 = np.percentile(per_image, [5, 50, 95]).astype(int)
        print(f"{name:38s} {f'{p5}-{p50}-{p95}':>20s} {int(np.median(lengths)):8d} "
              f"{int(np.percentile(lengths, 95)):7d} {np.mean(np.array(lengths) > 4096):6.1%} "
              f"{random_pad:11.1%} {grouped_pad:8.1%} {rate:7.0f}")


if __name__ == "__main__":
    main()
