"""Model classes (LlavaMed, MedSelector) and their one registration point with the transformers Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .llava_med import LlavaMedConfig, LlavaMedForConditionalGeneration, LlavaMedModel, LlavaMedProcessor
from .llava_med.modeling_llava_med import register_llava_weight_layout
from .med_selector import MedSelectorConfig, MedSelectorModel
from .llava_med.original_checkpoint import (
    LlavaMedOriginalConfig,
    LlavaMedOriginalForConditionalGeneration,
    LlavaMedOriginalProcessor,
)

__all__ = ["register_auto_classes"]


def register_auto_classes() -> None:
    """Register LlavaMed (AutoConfig / AutoModel / AutoModelForImageTextToText / AutoProcessor) and MedSelector
    (AutoConfig / AutoModel) with the Auto classes. Idempotent."""
    AutoConfig.register(LlavaMedConfig.model_type, LlavaMedConfig, exist_ok=True)
    AutoModel.register(LlavaMedConfig, LlavaMedModel, exist_ok=True)
    AutoModelForImageTextToText.register(LlavaMedConfig, LlavaMedForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(LlavaMedConfig, LlavaMedProcessor, exist_ok=True)
    register_llava_weight_layout()
    # Original LLaVA-Med v1.5 directories (`model_type "llava_mistral"`) load directly into LlavaMed.
    AutoConfig.register(LlavaMedOriginalConfig.model_type, LlavaMedOriginalConfig, exist_ok=True)
    AutoModelForImageTextToText.register(
        LlavaMedOriginalConfig, LlavaMedOriginalForConditionalGeneration, exist_ok=True
    )
    AutoProcessor.register(LlavaMedOriginalConfig, LlavaMedOriginalProcessor, exist_ok=True)
    # `save_pretrained` then writes `auto_map` and copies the module files, so the checkpoint loads with
    # `trust_remote_code=True` where hf_medvlm is not installed.
    LlavaMedConfig.register_for_auto_class("AutoConfig")
    LlavaMedForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
    LlavaMedProcessor.register_for_auto_class("AutoProcessor")
    AutoConfig.register(MedSelectorConfig.model_type, MedSelectorConfig, exist_ok=True)
    AutoModel.register(MedSelectorConfig, MedSelectorModel, exist_ok=True)
    MedSelectorConfig.register_for_auto_class("AutoConfig")
    MedSelectorModel.register_for_auto_class("AutoModel")
