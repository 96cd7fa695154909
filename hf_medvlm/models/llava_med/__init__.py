"""LlavaMed: LLaVA-Med as a transformers model (configuration, model, processor, converter of the originals).

The model and processor classes are imported on first use: their modules import `PreTrainedModel` / `ProcessorMixin`,
which take longer than torch and transformers together.
"""

from ..lazy import lazy_exports
from .configuration_llava_med import LlavaMedConfig

__all__ = [
    "LlavaMedConfig",
    "LlavaMedForConditionalGeneration",
    "LlavaMedModel",
    "LlavaMedPreTrainedModel",
    "LlavaMedProcessor",
    "load_chat_template",
]

__getattr__ = lazy_exports(__name__, {
    "LlavaMedForConditionalGeneration": ".modeling_llava_med",
    "LlavaMedModel": ".modeling_llava_med",
    "LlavaMedPreTrainedModel": ".modeling_llava_med",
    "LlavaMedProcessor": ".processing_llava_med",
    "load_chat_template": ".processing_llava_med",
})
