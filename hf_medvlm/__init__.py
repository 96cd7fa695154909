"""hf_medvlm: biomedical vision-language models (LlavaMed, PubMedVision, BioMed-VITAL) on the Hugging Face stack.

Importing the package registers LlavaMed and MedSelector with the transformers Auto classes (once, idempotently; see
`hf_medvlm.models`). The model and processor classes below are imported on first use.
"""

__version__ = "0.1.0"

from .models import register_auto_classes  # noqa: E402
from .models.lazy import lazy_exports  # noqa: E402
from .models.llava_med.configuration_llava_med import LlavaMedConfig  # noqa: E402

register_auto_classes()

__all__ = [
    "__version__",
    "LlavaMedConfig",
    "LlavaMedForConditionalGeneration",
    "LlavaMedModel",
    "LlavaMedProcessor",
    "register_auto_classes",
]

__getattr__ = lazy_exports(__name__, {
    "LlavaMedForConditionalGeneration": ".models.llava_med.modeling_llava_med",
    "LlavaMedModel": ".models.llava_med.modeling_llava_med",
    "LlavaMedProcessor": ".models.llava_med.processing_llava_med",
})
