"""Length grouping by modality: batches of similar length that never mix image and text-only samples.

LLaVA-1.5's `group_by_modality_length` sorts inside one optimizer step, so with one GPU and no accumulation it groups
nothing; this sampler sorts inside up to 50 steps (as transformers' `LengthGroupedSampler`), then shuffles the steps.
Why steps stay single-modality, and the padding it saves: docs/training.md, "Length grouping by modality".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow.compute as pc
import torch
from torch.utils.data import Sampler

__all__ = ["ModalityLengthGroupedSampler", "image_counts", "padded_tokens"]

MAX_WINDOW_STEPS = 50


class ModalityLengthGroupedSampler(Sampler[int]):
    """Yield dataset indices so that consecutive `step_size` indices form one single-modality, length-sorted step.

    Args:
        lengths: token length of every sample (image placeholders included).
        has_image: whether each sample has at least one image.
        step_size: samples per optimizer step over all ranks (per-device batch x world size x accumulation steps).
        seed: base seed; the order of epoch `e` depends only on `seed + e`, which makes resuming exact.

    Each modality is padded to a whole number of steps by repeating some of its own samples (as `DistributedSampler`
    pads to equal shards), so no step mixes modalities; at most `step_size - 1` repeats per modality and epoch.
    """

    def __init__(self, lengths: Sequence[int], has_image: Sequence[bool], step_size: int, seed: int = 0):
        if len(lengths) != len(has_image):
            raise ValueError(f"got {len(lengths)} lengths but {len(has_image)} modality flags")
        if step_size < 1:
            raise ValueError(f"step_size must be positive, got {step_size}")
        self.lengths = torch.as_tensor(lengths, dtype=torch.long)
        self.has_image = torch.as_tensor(has_image, dtype=torch.bool)
        self.step_size = step_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _modalities(self) -> list[torch.Tensor]:
        groups = [torch.nonzero(self.has_image).flatten(), torch.nonzero(~self.has_image).flatten()]
        return [g for g in groups if len(g)]

    def __len__(self) -> int:
        return sum(-(-len(g) // self.step_size) * self.step_size for g in self._modalities())

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        steps = [step for group in self._modalities() for step in self._steps(group, generator)]
        order = torch.randperm(len(steps), generator=generator).tolist()
        # Longest step first, so an out-of-memory shows up at step 1 rather than hours in.
        longest = max(range(len(steps)), key=lambda i: int(self.lengths[steps[i]].max()))
        order.remove(longest)
        for i in [longest, *order]:
            yield from steps[i].tolist()

    def _steps(self, indices: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        indices = indices[torch.randperm(len(indices), generator=generator)]
        missing = -len(indices) % self.step_size
        if missing:
            extra = indices[torch.randint(len(indices), (missing,), generator=generator)]
            indices = torch.cat([indices, extra])
        num_steps = len(indices) // self.step_size
        window = self.step_size * max(1, min(MAX_WINDOW_STEPS, num_steps // 4))
        steps = []
        for chunk in indices.split(window):
            chunk = chunk[torch.argsort(self.lengths[chunk], descending=True, stable=True)]
            steps.extend(chunk.split(self.step_size))
        return steps


def image_counts(dataset) -> list[int]:
    """Images per row, from the Arrow list lengths of `images` (or 0/1 for a single `image` column); none decoded."""
    if "images" in dataset.column_names:
        return pc.fill_null(pc.list_value_length(dataset.with_format("arrow")[:].column("images")), 0).to_pylist()
    if "image" in dataset.column_names:
        return [int(valid) for valid in dataset.with_format("arrow")[:].column("image").is_valid().to_pylist()]
    return [0] * len(dataset)


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(pad tokens, total tokens) when each batch is right-padded to its longest sample."""
    total = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return total - sum(lengths[i] for batch in batches for i in batch), total
