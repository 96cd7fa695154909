"""MedSelector: BioMed-VITAL's data-selection model (a CLIP-like dual encoder plus an MLP scoring head)."""

from .configuration_med_selector import LOSS_TYPES, MedSelectorConfig
from .modeling_med_selector import MedSelectorModel, MedSelectorOutput, pairwise_loss

__all__ = ["LOSS_TYPES", "MedSelectorConfig", "MedSelectorModel", "MedSelectorOutput", "pairwise_loss"]
