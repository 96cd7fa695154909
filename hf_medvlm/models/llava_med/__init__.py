from .configuration_llava_med import LlavaMedConfig
from .modeling_llava_med import LlavaMedForConditionalGeneration, LlavaMedModel, LlavaMedPreTrainedModel
from .processing_llava_med import LlavaMedProcessor, load_chat_template

__all__ = [
    "LlavaMedConfig",
    "LlavaMedForConditionalGeneration",
    "LlavaMedModel",
    "LlavaMedPreTrainedModel",
    "LlavaMedProcessor",
    "load_chat_template",
]
