"""Training the selection model with the HF Trainer on human and model preference pairs mixed at a set ratio (the
paper's 1:400, seed 002 §4.2 "Preference mixture")."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import datasets
import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from .data import encode_candidates, fit_candidate_texts
from .metrics import pair_metrics

__all__ = [
    "SelectorTrainingArguments",
    "PairCollator",
    "MixedSourceSampler",
    "SelectorTrainer",
    "freeze_encoder",
    "compute_pair_metrics",
    "train_selector",
    "text_truncation",
]

logger = logging.getLogger(__name__)

# Attribute names of the vision / text towers (and their projections) in transformers dual encoders.
_VISION_MODULES = ("vision_model", "visual_projection", "vision_projection")
_TEXT_MODULES = ("text_model", "text_projection")


@dataclass
class SelectorTrainingArguments(TrainingArguments):
    human_weight: float = field(default=1.0, metadata={
        "help": "Mixing weight w (seed 002 Eq. 3): multiplies the loss of every human (clinician) pair; model pairs "
                "keep weight 1. The paper's best value is 400 with 1:400 human:model pairs (Table 1). Human pairs "
                "then contribute w / model_pairs_per_human_pair times the model pairs' share of the loss."})
    model_pairs_per_human_pair: float = field(default=400.0, metadata={
        "help": "The human:model mix of the training stream, 1:N: one human pair per N model pairs (the paper: "
                "1:400, seed 002 §4.2), human pairs cycled (or subsampled) to reach it and spread evenly over the "
                "epoch; an epoch is one pass over the model pairs. 0 = the pairs' own proportion (plain shuffle)."})
    freeze_vision_encoder: bool = field(default=False, metadata={"help": "Freeze the image tower and projection."})
    freeze_text_encoder: bool = field(default=False, metadata={"help": "Freeze the text tower and projection."})
    max_text_length: int = field(default=256, metadata={
        "help": "Truncate encoded texts to this many tokens (BiomedCLIP's context length is 256; CLIP's is 77)."})
    # Defaults that differ from TrainingArguments: the collator needs the raw pair columns.
    # Learning rate 1e-5 and 6 epochs as the released code (the paper says 1e-4).
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep raw pair columns for the collator."})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate."})
    num_train_epochs: float = field(default=6.0, metadata={"help": "Epochs over the model pairs."})


@dataclass
class PairCollator:
    """Pairs -> `input_ids`/`attention_mask`/`pixel_values` for 2N candidates, `labels` and `pair_weights`."""

    processor: object
    human_weight: float = 1.0
    include_caption: bool = True
    max_length: int = 256

    def __call__(self, pairs: list[dict]) -> dict[str, torch.Tensor]:
        candidates = [{name: pair[f"{name}_{side}"] for name in ("caption", "question", "answer", "image")}
                      for side in "ab" for pair in pairs]  # all `a` candidates, then all `b` candidates
        batch, _ = encode_candidates(self.processor, candidates, include_caption=self.include_caption,
                                     max_length=self.max_length)
        batch["labels"] = torch.tensor([int(p["label"]) for p in pairs])
        batch["pair_weights"] = torch.tensor(
            [self.human_weight if p["source"] == "human" else 1.0 for p in pairs], dtype=torch.float32)
        return batch


class MixedSourceSampler(torch.utils.data.Sampler):
    """Indices for one epoch: every model pair once (shuffled) and `human_draws` human pairs, one per `ratio` model
    pairs, each dropped at a random place inside its own stretch of `ratio` model pairs (stratified, so the mix holds
    over any part of the epoch). Human pairs are reshuffled and cycled across draws and epochs."""

    def __init__(self, sources: list[str], ratio: float, seed: int = 0):
        if ratio <= 0:
            raise ValueError(f"model_pairs_per_human_pair must be > 0 for a mixed stream, got {ratio}")
        self.human = [i for i, s in enumerate(sources) if s == "human"]
        self.model = [i for i, s in enumerate(sources) if s != "human"]
        self.seed, self.epoch = seed, 0
        # At least one human pair per epoch, or they would never be seen when model pairs are fewer than `ratio`.
        self.human_draws = max(1, round(len(self.model) / ratio)) if self.human and self.model else 0

    def __len__(self) -> int:
        return len(self.model) + self.human_draws if self.model else len(self.human)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        if not self.model:
            yield from (self.human[i] for i in torch.randperm(len(self.human), generator=generator).tolist())
            return
        keys = [(float(j), self.model[i]) for j, i in
                enumerate(torch.randperm(len(self.model), generator=generator).tolist())]
        stretch = len(self.model) / max(self.human_draws, 1)
        offsets = torch.rand(self.human_draws, generator=generator).tolist()
        humans = self._cycle(generator)
        keys += [((k + offsets[k]) * stretch, next(humans)) for k in range(self.human_draws)]
        yield from (index for _, index in sorted(keys))

    def _cycle(self, generator):
        while self.human:
            yield from (self.human[i] for i in torch.randperm(len(self.human), generator=generator).tolist())

    def mix(self) -> dict:
        """What the stream holds per epoch, for the run summary."""
        return {"model_pairs": len(self.model), "human_pairs": len(self.human), "human_draws": self.human_draws,
                "model_pairs_per_human_draw": len(self.model) / self.human_draws if self.human_draws else None}


class SelectorTrainer(Trainer):
    """`Trainer` whose training stream mixes human and model pairs at a set ratio (see `MixedSourceSampler`)."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.model_pairs_per_human_pair <= 0 or "source" not in dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        return MixedSourceSampler(dataset["source"], self.args.model_pairs_per_human_pair, seed=self.args.seed)


def freeze_encoder(model, vision: bool = False, text: bool = False) -> list[str]:
    """Freeze the image and/or text tower of `model.encoder`; returns the frozen module names."""
    frozen = []
    for kind, names, wanted in (("vision", _VISION_MODULES, vision), ("text", _TEXT_MODULES, text)):
        if not wanted:
            continue
        found = [n for n in names if getattr(model.encoder, n, None) is not None]
        if not found:
            raise ValueError(f"cannot find the {kind} tower of {type(model.encoder).__name__} (looked for {names}).")
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
    """Freeze as asked, train on `train_pairs`; returns the trainer, evaluating on `eval_pairs` (held-out human
    pairs)."""
    freeze_encoder(model, vision=args.freeze_vision_encoder, text=args.freeze_text_encoder)
    truncated = text_truncation(processor, train_pairs, model.config.include_caption, args.max_text_length)
    collator = PairCollator(processor, human_weight=args.human_weight, include_caption=model.config.include_caption,
                            max_length=args.max_text_length)
    trainer = SelectorTrainer(model=model, args=args, train_dataset=train_pairs, eval_dataset=eval_pairs,
                              data_collator=collator, processing_class=processor,
                              compute_metrics=compute_pair_metrics if eval_pairs is not None else None)
    trainer.text_truncation = truncated
    trainer.train()
    return trainer


def text_truncation(processor, pairs, include_caption: bool, max_length: int) -> dict[str, int]:
    """How many candidate texts of `pairs` must be cut to `max_length` tokens, by kind; logged when any."""
    tokenizer = getattr(processor, "tokenizer", processor)
    candidates = ({name: pair.get(f"{name}_{side}") for name in ("caption", "question", "answer")}
                  for pair in pairs for side in "ab")
    _, outcomes = fit_candidate_texts(tokenizer, candidates, include_caption=include_caption, max_length=max_length)
    if outcomes:
        logger.warning("%d of %d candidate texts exceed %d tokens: %s (the question and answer are kept whole "
                       "unless they alone are too long: qa_truncated)", sum(outcomes.values()), 2 * len(pairs),
                       max_length, dict(outcomes))
    return dict(outcomes)
