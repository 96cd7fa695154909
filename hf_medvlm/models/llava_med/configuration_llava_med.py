"""LlavaMed configuration: a LLaVA config plus the fields LLaVA-Med needs.

This file is also copied next to saved checkpoints as remote code, so it only imports from `transformers`,
`huggingface_hub` and relative modules.
"""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.llava.configuration_llava import LlavaConfig

__all__ = ["LlavaMedConfig"]

PROJECTOR_TYPES = ("mlp2x_gelu", "linear")
# How a fresh model's projector starts: v1.5's builder (last layer 0, bias = mean token embedding) or nn.Linear's own.
PROJECTOR_INITS = ("llava_med", "torch")
IMAGE_ASPECT_MODES = ("pad", "none")


@strict
class LlavaMedConfig(LlavaConfig):
    r"""
    Configuration of a LLaVA-Med model. The defaults describe LLaVA-Med v1.5 (`microsoft/llava-med-v1.5-mistral-7b`):
    a CLIP ViT-L/14-336 vision tower, a 2-layer GELU projector and Mistral-7B-Instruct-v0.2, with `<image>` added to
    the 32,000-token Mistral vocabulary at id 32000 and `<pad>` at 32001 (embeddings padded to a multiple of 64).

    The fields inherited from `LlavaConfig` keep their meaning:
    `vision_feature_layer` (hidden-state index of the vision tower used as image features, default -2) and
    `vision_feature_select_strategy` (`"default"` = patch tokens only, as the original `mm_vision_select_feature="patch"`;
    `"full"` = CLS token included, as `"cls_patch"`).

    Args:
        projector_type (`str`, defaults to `"mlp2x_gelu"`):
            `"mlp2x_gelu"` (Linear -> GELU -> Linear, LLaVA-Med v1.5) or `"linear"` (one Linear, LLaVA-Med v1.0).
        image_aspect_mode (`str`, defaults to `"pad"`):
            `"pad"` pads each image to a square in the CLIP mean colour before resizing (v1.5's `image_aspect_ratio
            "pad"`); `"none"` resizes the shortest edge and centre-crops (v1.0).
        added_tokens (`dict`, *optional*):
            Tokens the converter added to the original vocabulary (token -> id), kept for provenance.
    """

    model_type = "llava_med"

    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="clip_vision_model",
            init_kwargs={
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "patch_size": 14,
                "image_size": 336,
                "projection_dim": 768,
                "hidden_act": "quick_gelu",
            },
        ),
        "text_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="mistral",
            init_kwargs={
                "hidden_size": 4096,
                "intermediate_size": 14336,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "max_position_embeddings": 32768,
                "rope_theta": 1000000.0,
                "sliding_window": None,
                "rms_norm_eps": 1e-5,
                "vocab_size": 32064,
                "bos_token_id": 1,
                "eos_token_id": 2,
                "pad_token_id": 32001,
            },
        ),
    }

    image_token_index: int = 32000
    # Re-declared as plain `str` so that a bad value raises ValueError (below) instead of a strict-typing error.
    vision_feature_select_strategy: str = "default"
    projector_type: str = "mlp2x_gelu"
    image_aspect_mode: str = "pad"
    added_tokens: dict | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # Checked here rather than through `@strict` validators so that users get a plain ValueError.
        choices = {"projector_type": PROJECTOR_TYPES, "image_aspect_mode": IMAGE_ASPECT_MODES,
                   "vision_feature_select_strategy": ("default", "full")}  # patch tokens only / CLS token included
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field} must be one of {allowed}, got {getattr(self, field)!r}")
        num_layers = self.vision_config.num_hidden_layers
        # hidden_states has num_layers + 1 entries (embeddings first), so valid indices are [-(n+1), n].
        layers = [self.vision_feature_layer] if isinstance(self.vision_feature_layer, int) else self.vision_feature_layer
        for layer in layers:
            if not -(num_layers + 1) <= layer <= num_layers:
                raise ValueError(
                    f"vision_feature_layer {layer} is out of range for a vision tower with {num_layers} layers "
                    f"(valid: {-(num_layers + 1)}..{num_layers})"
                )
        if self.projector_type == "linear" and not isinstance(self.vision_feature_layer, int):
            raise ValueError("projector_type 'linear' (LLaVA-Med v1.0) takes a single vision_feature_layer, not a list")
        vocab_size = self.text_config.vocab_size
        if not 0 <= self.image_token_index < vocab_size:
            raise ValueError(
                f"image_token_index {self.image_token_index} must be a token of the language model's vocabulary "
                f"(text_config.vocab_size={vocab_size}); add `<image>` to the tokenizer and resize the embeddings"
            )
