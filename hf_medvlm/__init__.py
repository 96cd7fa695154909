"""hf_medvlm: biomedical vision-language models (LLaVA-Med, PubMedVision, BioMed-VITAL) on the Hugging Face stack.

Importing the package registers the LlavaMed classes with the transformers Auto classes (once, idempotently).
"""

__version__ = "0.1.0"

from .models import register_auto_classes  # noqa: E402
from .models.llava_med import (  # noqa: E402
    LlavaMedConfig,
    LlavaMedForConditionalGeneration,
    LlavaMedModel,
    LlavaMedProcessor,
)

register_auto_classes()

__all__ = [
    "__version__",
    "LlavaMedConfig",
    "LlavaMedForConditionalGeneration",
    "LlavaMedModel",
    "LlavaMedProcessor",
    "register_auto_classes",
]
