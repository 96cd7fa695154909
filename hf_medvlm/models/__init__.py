"""Model classes (LlavaMed, MedSelector) and their one registration point with the transformers Auto classes.

`import hf_medvlm` calls `register_auto_classes()`. The configs are registered with `AutoConfig` at once. The model
and processor classes (for `AutoModel`, `AutoModelForImageTextToText`, `AutoProcessor`) are registered at the first
of these moments, because their modules import `PreTrainedModel` / `ProcessorMixin`, which take longer than torch and
transformers together, and a command's `--help` or a data job needs neither:

1. transformers' `processing_auto` module is imported (`from transformers import AutoProcessor` does it; it imports
   `ProcessorMixin` and `PreTrainedModel` itself), or one of this package's model modules is (the classes are in use:
   `save_pretrained` must write `auto_map`);
2. a LlavaMed / MedSelector config object is created. An Auto model class always holds the config object before it
   looks up the model class (`from_pretrained` loads it with `AutoConfig`, `from_config` is given it), so the lookup
   finds the registration in place. The config classes' `__post_init__` calls back once, then is restored.

For (1) a small `sys.meta_path` finder checks after each `transformers.*` / `hf_medvlm.*` module has executed, and
removes itself once the classes are registered. Both wait while one of those modules is still half-executed (e.g.
`modeling_llava`, which imports `AutoModel` halfway through): importing the model classes then would see it incomplete.
The check after that module finishes registers them.

Why these moments (transformers >=5.23,<6): `transformers.models.auto.modeling_auto` is imported by every model
config's `@auto_docstring`, LlavaMedConfig's included, so "after modeling_auto" would mean "at once"; and
`AutoModel*.from_pretrained` looks the model class up before anything imports `PreTrainedModel`, so "after
modeling_utils" would be too late. Only public registration calls are used (`AutoConfig.register`,
`Auto*.register`, `register_for_auto_class`); the rest is Python's import system (`spec._initializing` has marked a
module under execution since Python 3.4).
"""

from __future__ import annotations

import importlib.machinery
import sys

from transformers import AutoConfig

from .llava_med.configuration_llava_med import LlavaMedConfig
from .llava_med.configuration_llava_mistral import LlavaMedOriginalConfig
from .med_selector.configuration_med_selector import MedSelectorConfig

__all__ = ["register_auto_classes"]

TRIGGER_MODULES = (
    "transformers.models.auto.processing_auto",
    "hf_medvlm.models.llava_med.modeling_llava_med",
    "hf_medvlm.models.llava_med.original_checkpoint",
    "hf_medvlm.models.med_selector.modeling_med_selector",
)
_CONFIG_CLASSES = (LlavaMedConfig, MedSelectorConfig)  # LlavaMedOriginalConfig inherits LlavaMedConfig's
_state = {"registered": False, "registering": False, "config_created": False}


def register_auto_classes() -> None:
    """Register LlavaMed (with the original `llava_mistral` layout) and MedSelector with the Auto classes. Idempotent.

    Configs now; model and processor classes at the moments the module docstring lists.
    """
    # Original LLaVA-Med v1.5 directories (`model_type "llava_mistral"`) load directly into LlavaMed.
    for config_class in (LlavaMedConfig, LlavaMedOriginalConfig, MedSelectorConfig):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    # `save_pretrained` then writes `auto_map` and copies the module files, so checkpoints load with
    # `trust_remote_code=True` where hf_medvlm is not installed.
    LlavaMedConfig.register_for_auto_class("AutoConfig")
    MedSelectorConfig.register_for_auto_class("AutoConfig")
    _register_when_ready()
    if not _state["registered"]:
        _watch()


def _register_model_classes() -> None:
    from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor

    from .llava_med.modeling_llava_med import (
        LlavaMedForConditionalGeneration,
        LlavaMedModel,
        register_llava_weight_layout,
    )
    from .llava_med.original_checkpoint import LlavaMedOriginalForConditionalGeneration, LlavaMedOriginalProcessor
    from .llava_med.processing_llava_med import LlavaMedProcessor
    from .med_selector.modeling_med_selector import MedSelectorModel

    AutoModel.register(LlavaMedConfig, LlavaMedModel, exist_ok=True)
    AutoModelForImageTextToText.register(LlavaMedConfig, LlavaMedForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(LlavaMedConfig, LlavaMedProcessor, exist_ok=True)
    register_llava_weight_layout()
    AutoModelForImageTextToText.register(
        LlavaMedOriginalConfig, LlavaMedOriginalForConditionalGeneration, exist_ok=True
    )
    AutoProcessor.register(LlavaMedOriginalConfig, LlavaMedOriginalProcessor, exist_ok=True)
    AutoModel.register(MedSelectorConfig, MedSelectorModel, exist_ok=True)
    LlavaMedForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
    LlavaMedProcessor.register_for_auto_class("AutoProcessor")
    MedSelectorModel.register_for_auto_class("AutoModel")


def _register_when_ready(just_executed: str | None = None) -> None:
    if _state["registered"] or _state["registering"]:
        return
    if not (_state["config_created"] or any(name in sys.modules for name in TRIGGER_MODULES)):
        return
    if any(_half_executed(name, module) for name, module in list(sys.modules.items()) if name != just_executed):
        return
    _state["registering"] = True
    try:
        _register_model_classes()
        _state["registered"] = True
    finally:
        _state["registering"] = False
    _unwatch()


def _half_executed(name: str, module) -> bool:
    # importlib marks a module's spec `_initializing` from the start to the end of its execution.
    watched = name == "transformers" or name.startswith(("transformers.", "hf_medvlm.models."))
    return watched and getattr(getattr(module, "__spec__", None), "_initializing", False)


def _watch() -> None:
    if _RegisterAfterImport not in sys.meta_path:
        sys.meta_path.insert(0, _RegisterAfterImport)
    for config_class in _CONFIG_CLASSES:
        if "_hf_medvlm_post_init" not in config_class.__dict__:
            config_class._hf_medvlm_post_init = config_class.__dict__["__post_init__"]
            config_class.__post_init__ = _post_init_then_register


def _unwatch() -> None:
    if _RegisterAfterImport in sys.meta_path:
        sys.meta_path.remove(_RegisterAfterImport)
    for config_class in _CONFIG_CLASSES:
        if "_hf_medvlm_post_init" in config_class.__dict__:
            config_class.__post_init__ = config_class.__dict__["_hf_medvlm_post_init"]
            del config_class._hf_medvlm_post_init


def _post_init_then_register(self, *args, **kwargs):
    type(self)._hf_medvlm_post_init(self, *args, **kwargs)  # the original `__post_init__` of the nearest watched class
    _state["config_created"] = True
    _register_when_ready()


class _RegisterAfterImport:
    """Finds `transformers.*` / `hf_medvlm.*` modules as the next finders would, and checks after each has run."""

    @classmethod
    def find_spec(cls, name: str, path=None, target=None):
        if not name.startswith(("transformers.", "hf_medvlm.")) or cls not in sys.meta_path:
            return None
        for finder in sys.meta_path[sys.meta_path.index(cls) + 1:]:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if isinstance(loader, importlib.machinery.SourceFileLoader):  # one loader object per module file

            def exec_module(module, run=loader.exec_module):
                del loader.exec_module
                run(module)
                _register_when_ready(just_executed=name)  # still marked `_initializing` until this returns

            loader.exec_module = exec_module
        return spec
