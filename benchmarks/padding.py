"""Pad tokens: TRL's default sampler (uniform random) vs `ModalityLengthGroupedSampler`, on a realistic length mix.

Stand-in length distribution (documented, not measured on the real files, whose images are not available offline):
  - image samples (85%): 576 image tokens (CLIP-336/14) + a multi-turn conversation whose text length is log-normal
    with median 200 tokens (sigma 0.6, clipped to 20..1400), the shape of LLaVA-Med's 60K-IM instruct set
    (4-5 GPT-4 turns about one figure);
  - text-only samples (15%): log-normal, median 500 tokens (sigma 0.8, clipped to 20..2000), like the ShareGPT-style
    text conversations that LLaVA-1.5's 665K mix (and the PubMedVision / BioMed-VITAL setups built on it) contain.
Each device batch is right-padded to its longest sample (TRL's collator). Pad fraction = pad / (pad + real tokens).

    python -m benchmarks.padding [--samples 60000]      (from the repository root)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hf_medvlm.training.sampler import ModalityLengthGroupedSampler, padded_tokens


def stand_in_lengths(n: int, seed: int = 0) -> tuple[list[int], list[bool]]:
    rng = np.random.default_rng(seed)
    has_image = rng.random(n) < 0.85
    image_text = np.clip(rng.lognormal(np.log(200), 0.6, n), 20, 1400)
    text_only = np.clip(rng.lognormal(np.log(500), 0.8, n), 20, 2000)
    lengths = np.where(has_image, 576 + image_text, text_only).astype(int)
    return lengths.tolist(), has_image.tolist()


def device_batches(order: list[int], per_device: int) -> list[list[int]]:
    return [order[i : i + per_device] for i in range(0, len(order), per_device)]


def compare(lengths, has_image, per_device: int, world: int, accumulation: int) -> tuple[float, float]:
    random_order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = ModalityLengthGroupedSampler(lengths, has_image, per_device * world * accumulation, seed=0)
    pad_random, total_random = padded_tokens(lengths, device_batches(random_order, per_device))
    pad_grouped, total_grouped = padded_tokens(lengths, device_batches(list(sampler), per_device))
    return pad_random / total_random, pad_grouped / total_grouped, pad_random / pad_grouped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=60000)
    args = parser.parse_args()
    lengths, has_image = stand_in_lengths(args.samples)
    print(f"{args.samples} samples, {sum(has_image)} with an image, mean length {np.mean(lengths):.0f} tokens")
    print(f"{'setup':44s} {'TRL random pad':>15s} {'grouped pad':>12s} {'fewer pads':>11s}")
    for name, per_device, world, accumulation in [
        ("stage 2, 8 GPUs x 16 (global 128)", 16, 8, 1),
        ("stage 2, 8 GPUs x 4 x accum 4 (global 128)", 4, 8, 4),
        ("QLoRA, 1 GPU x 4 x accum 32", 4, 1, 32),
        ("1 GPU x 8, no accumulation", 8, 1, 1),
    ]:
        random_frac, grouped_frac, ratio = compare(lengths, has_image, per_device, world, accumulation)
        print(f"{name:44s} {random_frac:15.1%} {grouped_frac:12.1%} {ratio:10.1f}x")


if __name__ == "__main__":
    main()
