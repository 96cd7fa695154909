"""LlavaMed model: transformers' LLaVA with LLaVA-Med's projector variants and projector initialisation.

Only the differences from `LlavaModel` / `LlavaForConditionalGeneration` live here. This file is also copied next to
saved checkpoints as remote code, so it imports only from `torch`, `transformers` and relative modules.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, GenerationMixin
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping
from transformers.models.llava.modeling_llava import (
    LlavaForConditionalGeneration,
    LlavaModel,
    LlavaMultiModalProjector,
    LlavaPreTrainedModel,
)

from .configuration_llava_med import PROJECTOR_INITS, LlavaMedConfig

__all__ = [
    "LlavaMedPreTrainedModel",
    "LlavaMedModel",
    "LlavaMedForConditionalGeneration",
    "LlavaMedLinearProjector",
    "register_llava_weight_layout",
    "grow_vocab",
]


def register_llava_weight_layout() -> None:
    """Read and write LlavaMed weights in the stock Llava on-disk layout (`language_model.model.*`, ...).

    transformers only applies its renaming rules to the model types and class names it knows: without the `llava_med`
    rules a Llava-layout checkpoint would silently re-initialise every language-model tensor, and without the
    `LlavaMedModel` rule (stock `LlavaModel`'s) saving would write `language_model.*` instead of
    `language_model.model.*`. Idempotent.
    """
    for ours, stock in ((LlavaMedConfig.model_type, "llava"), ("LlavaMedModel", "LlavaModel")):
        register_checkpoint_conversion_mapping(ours, get_checkpoint_conversion_mapping(stock), overwrite=True)


class LlavaMedLinearProjector(nn.Module):
    """LLaVA-Med v1.0's projector: a single Linear from vision features to the language model width."""

    def __init__(self, config: LlavaMedConfig):
        super().__init__()
        self.linear_1 = nn.Linear(
            config.vision_config.hidden_size, config.text_config.hidden_size, bias=config.multimodal_projector_bias
        )

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.linear_1(image_features)


class LlavaMedPreTrainedModel(LlavaPreTrainedModel):
    config: LlavaMedConfig
    config_class = LlavaMedConfig

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # Remote-code users never import hf_medvlm, so the weight layout is registered here as well.
        register_llava_weight_layout()
        return super().from_pretrained(*args, **kwargs)

    @classmethod
    def is_custom_code(cls) -> bool:
        # transformers skips parameter-less modules when initialising missing weights of "custom code" (it cannot trust
        # remote `_init_weights`), which left CLIP's attention/MLP Linears at the generic std. These classes are plain
        # transformers modules initialised by transformers' own `_init_weights`, so the stock path applies.
        return False


class LlavaMedModel(LlavaMedPreTrainedModel, LlavaModel):
    def __init__(self, config: LlavaMedConfig):
        LlavaPreTrainedModel.__init__(self, config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        # `mlp2x_gelu` is exactly Llava's projector, which keeps `--to llava` exports key-compatible.
        linear = config.projector_type == "linear"
        self.multi_modal_projector = LlavaMedLinearProjector(config) if linear else LlavaMultiModalProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()


class LlavaMedForConditionalGeneration(LlavaMedPreTrainedModel, LlavaForConditionalGeneration, GenerationMixin):
    def __init__(self, config: LlavaMedConfig):
        LlavaPreTrainedModel.__init__(self, config)
        self.model = LlavaMedModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    @classmethod
    def from_vision_and_text_pretrained(
        cls,
        vision_model_name_or_path: str,
        text_model_name_or_path: str,
        tokenizer=None,
        dtype: torch.dtype | str | None = None,
        projector_init: str = "llava_med",
        **config_kwargs,
    ) -> "LlavaMedForConditionalGeneration":
        """Build a fresh LlavaMed from a pretrained vision encoder and a pretrained causal LM (how stage 1 starts).

        The vision tower may be any `AutoModel`-loadable vision model, or a dual encoder such as `CLIPModel` whose
        `vision_model` is taken. When `tokenizer` is given (normally `LlavaMedProcessor.tokenizer`, which already holds
        `<image>`, and `<im_start>`/`<im_end>` for v1.0), the LM embeddings are resized to it with mean initialisation
        and its `<image>`/pad ids are used. `projector_init="llava_med"` gives the projector v1.5's initialisation (last
        layer weight 0, bias = mean of the LM token embeddings, so every image position starts at the "average token");
        `"torch"` keeps `nn.Linear`'s own initialisation, as v1.0's `nn.Linear(1024, 4096)` projector had.
        """
        if projector_init not in PROJECTOR_INITS:
            raise ValueError(f"projector_init must be one of {PROJECTOR_INITS}, got {projector_init!r}")
        vision = _load_vision_encoder(vision_model_name_or_path, dtype)
        lm = AutoModelForCausalLM.from_pretrained(text_model_name_or_path, dtype=dtype)
        if tokenizer is not None:
            _fit_vocab_to_tokenizer(lm, tokenizer, config_kwargs)
        config = LlavaMedConfig(vision_config=vision.config, text_config=lm.config, **config_kwargs)
        model = cls(config)
        model.model.vision_tower.load_state_dict(vision.state_dict())
        model.model.language_model.load_state_dict(lm.get_decoder().state_dict())
        model.lm_head.load_state_dict(lm.get_output_embeddings().state_dict())
        if projector_init == "llava_med":
            init_projector_like_llava_med(model)
        else:
            for layer in model.model.multi_modal_projector.modules():
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
        return model.to(lm.dtype)


def _load_vision_encoder(name_or_path: str, dtype) -> nn.Module:
    vision = AutoModel.from_pretrained(name_or_path, dtype=dtype)
    # Dual encoders (CLIPModel, SiglipModel, ...) carry the vision half as `vision_model` + `config.vision_config`.
    if hasattr(vision.config, "vision_config") and hasattr(vision, "vision_model"):
        return vision.vision_model
    return vision


def _fit_vocab_to_tokenizer(lm: nn.Module, tokenizer, config_kwargs: dict) -> None:
    image_token = getattr(tokenizer, "image_token", None) or "<image>"
    image_id = tokenizer.convert_tokens_to_ids(image_token)
    if image_id is None or image_id == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {image_token!r} token; build it with LlavaMedProcessor first")
    grow_vocab(lm, padded_vocab_size(len(tokenizer)))
    config_kwargs.setdefault("image_token_index", image_id)
    if tokenizer.pad_token_id is not None:
        lm.config.pad_token_id = tokenizer.pad_token_id


def padded_vocab_size(n: int, multiple: int = 64) -> int:
    return -(-n // multiple) * multiple


@torch.no_grad()
def mean_rows(weight: torch.Tensor, new_rows: int) -> torch.Tensor:
    """`weight` with `new_rows` rows appended, each the mean of the existing rows (computed in float32).

    LLaVA-Med's (and LLaVA's) initialisation of added tokens; deterministic, unlike `mean_resizing=True`'s sampling.
    """
    mean = weight.float().mean(dim=0, keepdim=True).to(weight.dtype)
    return torch.cat([weight, mean.expand(new_rows, -1)], dim=0)


@torch.no_grad()
def grow_vocab(model: nn.Module, vocab_size: int) -> None:
    """Grow `model`'s input and output embeddings to `vocab_size` rows; new rows come from `mean_rows`."""
    old = model.get_input_embeddings().weight.shape[0]
    if vocab_size <= old:
        return
    embed, head = model.get_input_embeddings().weight.data, model.get_output_embeddings().weight.data
    model.resize_token_embeddings(vocab_size, mean_resizing=False)
    model.get_input_embeddings().weight.data.copy_(mean_rows(embed, vocab_size - old))
    model.get_output_embeddings().weight.data.copy_(mean_rows(head, vocab_size - old))


@torch.no_grad()
def init_projector_like_llava_med(model: LlavaMedForConditionalGeneration) -> None:
    """LLaVA-Med's projector init (not in upstream LLaVA): last Linear weight = 0, bias = mean token embedding."""
    projector = model.model.multi_modal_projector
    last = projector.linear_2 if hasattr(projector, "linear_2") else projector.linear_1
    last.weight.zero_()
    if last.bias is not None:
        last.bias.copy_(model.get_input_embeddings().weight.float().mean(dim=0).to(last.bias.dtype))
