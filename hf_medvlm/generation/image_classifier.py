"""Medical vs non-medical image classifier for the PubMedVision image filter (Chen et al., 2024, Appendix B: a
classifier on the CLIP image encoder, trained on ~1K hand-labelled and ~10K MLLM-labelled images).

A small linear head on the pooled output of a *frozen* CLIP vision encoder. It is a ``PreTrainedModel`` so it is
saved and loaded with ``save_pretrained`` / ``from_pretrained`` (encoder + head in one folder, with the image
processor saved next to it by `hf-medvlm filter train-classifier`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, PretrainedConfig, PreTrainedModel

__all__ = ["MedicalImageClassifierConfig", "MedicalImageClassifier", "image_features", "train_head"]


class MedicalImageClassifierConfig(PretrainedConfig):
    model_type = "medical_image_classifier"
    sub_configs = {"vision_config": CLIPVisionConfig}

    def __init__(self, vision_config=None, threshold: float = 0.5, **kwargs):
        if isinstance(vision_config, dict):
            vision_config = CLIPVisionConfig(**vision_config)
        self.vision_config = vision_config if vision_config is not None else CLIPVisionConfig()
        # Probability of "medical" at or above which an image is kept.
        self.threshold = threshold
        super().__init__(**kwargs)


class MedicalImageClassifier(PreTrainedModel):
    config_class = MedicalImageClassifierConfig
    main_input_name = "pixel_values"
    base_model_prefix = "medical_image_classifier"

    def __init__(self, config: MedicalImageClassifierConfig):
        super().__init__(config)
        self.vision_model = CLIPVisionModel(config.vision_config)
        self.head = nn.Linear(config.vision_config.hidden_size, 1)
        self.vision_model.requires_grad_(False)  # frozen encoder: only the head is trained
        self.post_init()

    @classmethod
    def from_vision_encoder(cls, encoder_name_or_path: str, threshold: float = 0.5, **kwargs) -> MedicalImageClassifier:
        """Wrap a pretrained CLIP vision tower (e.g. ``openai/clip-vit-large-patch14-336``) with a fresh head."""
        encoder = CLIPVisionModel.from_pretrained(encoder_name_or_path, **kwargs)
        model = cls(MedicalImageClassifierConfig(vision_config=encoder.config, threshold=threshold))
        model.vision_model.load_state_dict(encoder.state_dict())
        return model.eval()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits of "medical", shape ``(batch,)``."""
        return self.head(self.features(pixel_values)).squeeze(-1)

    @torch.no_grad()
    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision_model(pixel_values=pixel_values).pooler_output

    @torch.no_grad()
    def predict_proba(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(pixel_values))


def image_features(model: MedicalImageClassifier, image_processor, images, batch_size: int = 32) -> torch.Tensor:
    """Frozen-encoder features of PIL images or image paths (opened one batch at a time), computed once so the head
    can be trained for many epochs cheaply."""
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = [Image.open(x).convert("RGB") if isinstance(x, (str, Path)) else x
                 for x in images[start:start + batch_size]]
        pixel_values = image_processor(images=batch, return_tensors="pt")["pixel_values"]
        chunks.append(model.features(pixel_values.to(model.dtype)))
    return torch.cat(chunks)


def train_head(
    model: MedicalImageClassifier, features: torch.Tensor, labels: list[int], *, epochs: int = 200,
    learning_rate: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0,
) -> float:
    """Fit the head by full-batch logistic regression on precomputed features; returns the final training loss.
    Features are standardised into the head's weights so the saved model needs no extra scaler."""
    torch.manual_seed(seed)
    target = torch.tensor(labels, dtype=torch.float32)
    if set(target.unique().tolist()) - {0.0, 1.0} or len(target) != len(features):
        raise ValueError("labels must be 0 (non-medical) or 1 (medical), one per image")
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    head = nn.Linear(features.shape[1], 1)
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scaled = (features - mean) / std
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(head(scaled).squeeze(-1), target)
        loss.backward()
        optimizer.step()
    with torch.no_grad():  # fold the standardisation into the head: w' = w / std, b' = b - w' . mean
        weight = head.weight / std
        model.head.weight.copy_(weight)
        model.head.bias.copy_(head.bias - (weight * mean).sum())
    return float(loss.detach())
