"""MedSelector model: dual-encoder features -> MLP -> one quality score per (image, text) candidate.

Pairs are passed as one batch of 2N candidates, the N `a` candidates first, then the N `b` candidates, with `labels`
(0 = `a` preferred, 1 = `b` preferred) and optional per-pair `pair_weights` (the mixing weight w of seed 002 Eq. 3).

This file is also copied next to saved checkpoints as remote code, so it only imports from `torch`, `transformers`
and relative modules.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_med_selector import MedSelectorConfig

__all__ = ["MedSelectorModel", "MedSelectorOutput", "pairwise_loss"]


@dataclass
class MedSelectorOutput(ModelOutput):
    """
    Args:
        loss: weighted mean pairwise loss (only when `labels` are given).
        logits: `(batch,)` scores, or `(num_pairs, 2)` scores `[a, b]` when `labels` are given.
        features: `(batch, text_dim + image_dim)` concatenated encoder features (only with `output_features=True`).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    features: torch.Tensor | None = None


def pairwise_loss(pair_scores: torch.Tensor, labels: torch.Tensor, loss_type: str,
                  pair_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean over pairs of the per-pair loss.

    `pair_scores` are `(N, 2)` logits `[a, b]`; `labels` index the preferred candidate."""
    rows = torch.arange(len(labels), device=labels.device)
    preferred, other = pair_scores[rows, labels], pair_scores[rows, 1 - labels]
    if loss_type == "paper":
        # Eq. 1-2 with (z_pref, z_other) = (1, 0) as binary targets for both candidates. Read literally, Eq. 1 keeps
        # only the z=1 term, which never pushes the other candidate down; the paper calls the task "binary prediction
        # on good/bad ratings", so the z=0 candidate gets the -log(1 - sigmoid) term.
        per_pair = F.softplus(-preferred) + F.softplus(other)
    elif loss_type == "bradley_terry":
        per_pair = F.softplus(other - preferred)  # = -log sigmoid(f_pref - f_other)
    elif loss_type == "code_hinge":
        per_pair = torch.clamp(1.0 - (torch.sigmoid(preferred) - torch.sigmoid(other)), min=0.0)
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}.")
    if pair_weights is not None:
        per_pair = per_pair * pair_weights.to(per_pair.dtype)  # Eq. 3: w scales a pair's loss, mean over pairs
    return per_pair.mean()


def _pooled(output) -> torch.Tensor:
    # transformers 5 returns a BaseModelOutputWithPooling whose pooler_output is the projected feature; older
    # versions and some remote-code models return the tensor itself.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class MedSelectorModel(PreTrainedModel):
    config_class = MedSelectorConfig
    base_model_prefix = "selector"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = []

    def __init__(self, config: MedSelectorConfig):
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder_config)
        sizes = [config.text_feature_dim + config.image_feature_dim, *config.head_hidden_sizes]
        layers = []
        for size_in, size_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Dropout(config.head_dropout), nn.Linear(size_in, size_out), nn.ReLU()]
        self.head = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))  # PreTrainedModel init: N(0, 0.02), zero bias
        self.post_init()

    @classmethod
    def from_encoder(cls, encoder_name_or_path: str, **config_kwargs) -> "MedSelectorModel":
        """A selector with pretrained encoder weights (e.g. `openai/clip-vit-base-patch16`) and a fresh head."""
        encoder = AutoModel.from_pretrained(encoder_name_or_path)
        config = MedSelectorConfig(encoder_config=encoder.config.to_dict(), **config_kwargs)
        model = cls(config)
        model.encoder.load_state_dict(encoder.state_dict())
        return model

    def get_features(self, input_ids, attention_mask, pixel_values) -> torch.Tensor:
        """`[text, image]` features, L2-normalised when `config.normalize_features`."""
        text = _pooled(self.encoder.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
        image = _pooled(self.encoder.get_image_features(pixel_values=pixel_values))
        if self.config.normalize_features:
            text, image = F.normalize(text, dim=-1), F.normalize(image, dim=-1)
        return torch.cat([text, image], dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pair_weights: torch.Tensor | None = None,
        output_features: bool = False,
        return_dict: bool | None = None,
    ) -> MedSelectorOutput:
        features = self.get_features(input_ids, attention_mask, pixel_values)
        scores = self.head(features).squeeze(-1)
        loss = None
        if labels is not None:
            if len(scores) != 2 * len(labels):
                raise ValueError(f"{len(labels)} pair labels need 2 x {len(labels)} candidates, got {len(scores)}.")
            scores = torch.stack(scores.split(len(labels)), dim=1)  # (N, 2): column 0 = a, column 1 = b
            loss = pairwise_loss(scores, labels, self.config.loss_type, pair_weights)
        return MedSelectorOutput(loss=loss, logits=scores, features=features if output_features else None)
