"""MedSelector configuration: a CLIP-like dual encoder plus an MLP scoring head (BioMed-VITAL selection model).

This file is also copied next to saved checkpoints as remote code, so it only imports from `transformers` and
`huggingface_hub`.
"""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

__all__ = ["MedSelectorConfig", "LOSS_TYPES"]

# "paper": seed 002 Eq. 1-3 read as binary classification of both candidates (preferred -> 1, other -> 0);
# "bradley_terry": -log sigmoid(f(preferred) - f(other));
# "code_hinge": the released code's hinge with margin 1 on sigmoid outputs (kept to reproduce it; the margin is
# never met because sigmoid outputs differ by less than 1).
LOSS_TYPES = ("paper", "bradley_terry", "code_hinge")


@strict
class MedSelectorConfig(PreTrainedConfig):
    r"""
    Configuration of a MedSelector: any CLIP-like model that `AutoModel` builds and that has `get_text_features` and
    `get_image_features` (CLIP, SigLIP, ...), whose L2-normalised text and image features are concatenated
    (`[text, image]`, as the BioMed-VITAL code does) and scored by an MLP (ReLU between layers, one output logit).

    Args:
        encoder_config (`dict` or `PreTrainedConfig`, *optional*):
            Configuration of the dual encoder (defaults to a CLIP config).
        text_feature_dim (`int`, *optional*):
            Size of the text features; inferred from `encoder_config.projection_dim` (else the text hidden size).
        image_feature_dim (`int`, *optional*):
            Size of the image features; inferred like `text_feature_dim`.
        head_hidden_sizes (`list[int]`, defaults to `[512, 512, 512]`):
            Hidden layer sizes of the MLP head (BioMed-VITAL: 1024 -> 512 -> 512 -> 512 -> 1).
        head_dropout (`float`, defaults to 0.0):
            Dropout before each hidden layer of the head.
        normalize_features (`bool`, defaults to `True`):
            L2-normalise the encoder features before concatenation.
        loss_type (`str`, defaults to `"paper"`):
            Pairwise loss used when `labels` are passed: `"paper"`, `"bradley_terry"` or `"code_hinge"` (see
            docs/selection.md).
        include_caption (`bool`, defaults to `True`):
            Put the caption/inline mention in front of the question and answer in the encoded text.
        qa_rounds (`int`, defaults to 1):
            QA rounds of a conversation the selector reads (1 = first round only, as the released code; 0 = all).
    """

    model_type = "med_selector"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="clip")}

    encoder_config: PreTrainedConfig | dict | None = None
    text_feature_dim: int | None = None
    image_feature_dim: int | None = None
    head_hidden_sizes: list[int] | None = None
    head_dropout: float = 0.0
    normalize_features: bool = True
    loss_type: str = "paper"
    include_caption: bool = True
    qa_rounds: int = 1

    def __post_init__(self, **kwargs):
        if self.head_hidden_sizes is None:
            self.head_hidden_sizes = [512, 512, 512]
        super().__post_init__(**kwargs)
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"MedSelectorConfig.loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}.")
        if self.qa_rounds < 0:
            raise ValueError(f"MedSelectorConfig.qa_rounds must be >= 0 (0 = all rounds), got {self.qa_rounds}.")
        self.text_feature_dim = self.text_feature_dim or _feature_dim(self.encoder_config, "text_config")
        self.image_feature_dim = self.image_feature_dim or _feature_dim(self.encoder_config, "vision_config")


def _feature_dim(encoder_config, sub_name: str) -> int:
    sub_config = getattr(encoder_config, sub_name, None)
    size = getattr(encoder_config, "projection_dim", None) or getattr(sub_config, "hidden_size", None)
    if not size:
        raise ValueError(f"cannot infer the {sub_name} feature size of {type(encoder_config).__name__}; "
                         "set text_feature_dim/image_feature_dim in MedSelectorConfig.")
    return int(size)
