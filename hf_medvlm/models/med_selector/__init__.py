"""MedSelector: BioMed-VITAL's data-selection model (a CLIP-like dual encoder plus an MLP scoring head).

The model classes are imported on first use (their module imports `PreTrainedModel`).
"""

from ..lazy import lazy_exports
from .configuration_med_selector import LOSS_TYPES, MedSelectorConfig

__all__ = ["LOSS_TYPES", "MedSelectorConfig", "MedSelectorModel", "MedSelectorOutput", "pairwise_loss"]

__getattr__ = lazy_exports(__name__, {
    "MedSelectorModel": ".modeling_med_selector",
    "MedSelectorOutput": ".modeling_med_selector",
    "pairwise_loss": ".modeling_med_selector",
})
