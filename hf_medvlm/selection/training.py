"""Training the selection model with the HF Trainer on mixed human/model preference pairs.

Contents:
- `SelectorTrainingArguments`: `TrainingArguments` plus the mixing weight w, mixed-batch and freezing options.
- `PairCollator`: pairs -> one processor batch of 2N candidates (`a`s then `b`s), labels and per-pair weights.
- `MixedSourceSampler`: every batch holds `human_pairs_per_batch` human pairs (cycled) and model pairs for the rest,
  so the scarce clinician pairs are seen in every batch (seed 002 §3.2 "we mix two sources ... in each batch").
- `SelectorTrainer`: a `Trainer` that uses that sampler.
- `freeze_encoder`, `compute_pair_metrics`, `train_selector`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import datasets
import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from .data import candidate_text
from .metrics import pair_metrics

__all__ = [
    "SelectorTrainingArguments",
    "PairCollator",
    "MixedSourceSampler",
    "SelectorTrainer",
    "freeze_encoder",
    "compute_pair_metrics",
    "train_selector",
]

# Attribute names of the vision / text towers (and their projections) in transformers dual encoders.
_VISION_MODULES = ("vision_model", "visual_projection", "vision_projection")
_TEXT_MODULES = ("text_model", "text_projection")


@dataclass
class SelectorTrainingArguments(TrainingArguments):
    human_weight: float = field(default=1.0, metadata={
        "help": "Mixing weight w (seed 002 Eq. 3): multiplies the loss of every human (clinician) pair; model pairs "
                "keep weight 1. The paper's best value is 400 with 1:400 human:model pairs (Table 1)."})
    human_pairs_per_batch: int = field(default=1, metadata={
        "help": "Human pairs placed in every training batch (cycled when there are few); the rest of the batch is "
                "model pairs. 0 = plain shuffling of all pairs."})
    freeze_vision_encoder: bool = field(default=False, metadata={"help": "Freeze the image tower and projection."})
    freeze_text_encoder: bool = field(default=False, metadata={"help": "Freeze the text tower and projection."})
    max_text_length: int = field(default=256, metadata={
        "help": "Truncate encoded texts to this many tokens (BiomedCLIP's context length is 256; CLIP's is 77)."})
    # Defaults that differ from TrainingArguments: the collator needs the raw pair columns, and we report nothing
    # unless asked. Learning rate 1e-5 and 6 epochs as the released code (the paper says 1e-4).
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep raw pair columns for the collator."})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate."})
    num_train_epochs: float = field(default=6.0, metadata={"help": "Epochs over the model pairs."})
    report_to: str | list[str] | None = field(default="none", metadata={"help": "Trackers to report to."})


@dataclass
class PairCollator:
    """Pairs -> `input_ids`/`attention_mask`/`pixel_values` for 2N candidates, `labels` and `pair_weights`."""

    processor: object
    human_weight: float = 1.0
    include_caption: bool = True
    max_length: int = 256

    def __call__(self, pairs: list[dict]) -> dict[str, torch.Tensor]:
        texts, images = [], []
        for side in "ab":
            for pair in pairs:
                texts.append(candidate_text(pair[f"caption_{side}"], pair[f"question_{side}"],
                                            pair[f"answer_{side}"], self.include_caption))
                images.append(pair[f"image_{side}"].convert("RGB"))
        batch = self.processor(text=texts, images=images, padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        batch = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values") if k in batch}
        batch["labels"] = torch.tensor([int(p["label"]) for p in pairs])
        batch["pair_weights"] = torch.tensor(
            [self.human_weight if p["source"] == "human" else 1.0 for p in pairs], dtype=torch.float32)
        return batch


class MixedSourceSampler(torch.utils.data.Sampler):
    """Indices ordered so that each consecutive block of `batch_size` holds `human_per_batch` human pairs (reshuffled
    and cycled) and `batch_size - human_per_batch` model pairs; an epoch is one pass over the model pairs."""

    def __init__(self, sources: list[str], batch_size: int, human_per_batch: int, seed: int = 0):
        self.human = [i for i, s in enumerate(sources) if s == "human"]
        self.model = [i for i, s in enumerate(sources) if s != "human"]
        self.human_per_batch = min(human_per_batch, batch_size - 1) if self.model else batch_size
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        per_batch = self.batch_size - self.human_per_batch
        self.num_batches = math.ceil(len(self.model) / per_batch) if self.model else math.ceil(len(self.human) / batch_size)

    def __len__(self) -> int:
        if not self.model:
            return len(self.human)
        return len(self.model) + self.num_batches * min(self.human_per_batch, len(self.human))

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        if not self.model:
            yield from (self.human[i] for i in torch.randperm(len(self.human), generator=generator).tolist())
            return
        model = [self.model[i] for i in torch.randperm(len(self.model), generator=generator).tolist()]
        human_stream = self._cycle(generator)
        per_batch = self.batch_size - self.human_per_batch
        for start in range(0, len(model), per_batch):
            humans = [next(human_stream) for _ in range(min(self.human_per_batch, len(self.human)))]
            yield from humans + model[start:start + per_batch]

    def _cycle(self, generator):
        while self.human:
            yield from (self.human[i] for i in torch.randperm(len(self.human), generator=generator).tolist())


class SelectorTrainer(Trainer):
    """`Trainer` whose training batches mix human and model pairs (see `MixedSourceSampler`)."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.human_pairs_per_batch <= 0 or "source" not in dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        return MixedSourceSampler(dataset["source"], self.args.per_device_train_batch_size,
                                  self.args.human_pairs_per_batch, seed=self.args.seed)


def freeze_encoder(model, vision: bool = False, text: bool = False) -> list[str]:
    """Freeze the image and/or text tower of `model.encoder`; returns the frozen module names."""
    frozen = []
    for names, wanted in ((_VISION_MODULES, vision), (_TEXT_MODULES, text)):
        if not wanted:
            continue
        found = [n for n in names if getattr(model.encoder, n, None) is not None]
        if not found:
            raise ValueError(f"cannot find the {'vision' if names is _VISION_MODULES else 'text'} tower of "
                             f"{type(model.encoder).__name__} (looked for {names}).")
        for name in found:
            getattr(model.encoder, name).requires_grad_(False)
        frozen += found
    return frozen


def compute_pair_metrics(eval_pred) -> dict[str, float]:
    """`Trainer` `compute_metrics`: accuracy, AUC, mean rank and MAP on the evaluation pairs."""
    pair_scores = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    return pair_metrics(np.asarray(pair_scores), np.asarray(eval_pred.label_ids))


def train_selector(model, processor, train_pairs: datasets.Dataset, eval_pairs: datasets.Dataset | None,
                   args: SelectorTrainingArguments) -> SelectorTrainer:
    """Freeze as asked, train on `train_pairs`, evaluate on `eval_pairs` (held-out human pairs); returns the trainer."""
    freeze_encoder(model, vision=args.freeze_vision_encoder, text=args.freeze_text_encoder)
    collator = PairCollator(processor, human_weight=args.human_weight, include_caption=model.config.include_caption,
                            max_length=args.max_text_length)
    trainer = SelectorTrainer(model=model, args=args, train_dataset=train_pairs, eval_dataset=eval_pairs,
                              data_collator=collator, processing_class=processor,
                              compute_metrics=compute_pair_metrics if eval_pairs is not None else None)
    trainer.train()
    return trainer
