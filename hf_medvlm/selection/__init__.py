"""BioMed-VITAL data selection (seed 002 §3.2, §4.2): preference pairs, the selection model, training, scoring and
top-K picking. Importing this package registers `MedSelectorConfig`/`MedSelectorModel` with AutoConfig/AutoModel."""

from transformers import AutoConfig, AutoModel

from .configuration_med_selector import LOSS_TYPES, MedSelectorConfig
from .data import PAIR_FEATURES, SkipReport, load_pairs, pairs_from_clinician_choices, pairs_from_ratings, validate_pairs
from .modeling_med_selector import MedSelectorModel, MedSelectorOutput, pairwise_loss

__all__ = [
    "LOSS_TYPES",
    "MedSelectorConfig",
    "MedSelectorModel",
    "MedSelectorOutput",
    "PAIR_FEATURES",
    "SkipReport",
    "load_pairs",
    "pairs_from_clinician_choices",
    "pairs_from_ratings",
    "pairwise_loss",
    "register_selector_auto_classes",
    "validate_pairs",
]


def register_selector_auto_classes() -> None:
    """Register MedSelector with AutoConfig/AutoModel (idempotent); saved checkpoints carry it as remote code."""
    AutoConfig.register(MedSelectorConfig.model_type, MedSelectorConfig, exist_ok=True)
    AutoModel.register(MedSelectorConfig, MedSelectorModel, exist_ok=True)
    MedSelectorConfig.register_for_auto_class("AutoConfig")
    MedSelectorModel.register_for_auto_class("AutoModel")


register_selector_auto_classes()
