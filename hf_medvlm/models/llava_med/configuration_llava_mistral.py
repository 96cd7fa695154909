"""What `AutoConfig` returns for an original LLaVA-Med v1.5 `config.json` (`model_type "llava_mistral"`).

Kept apart from `original_checkpoint.py` (which imports the model and processor classes) so that `import hf_medvlm`
can register it with `AutoConfig` without importing any model code.
"""

from .configuration_llava_med import LlavaMedConfig

__all__ = ["LlavaMedOriginalConfig"]


class LlavaMedOriginalConfig(LlavaMedConfig):
    """An original v1.5 config, mapped to LlavaMed's fields as it is read."""

    model_type = "llava_mistral"

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        if "text_config" in config_dict:  # already mapped (e.g. a re-saved config)
            return super().from_dict(config_dict, **kwargs)
        # Only needed once an original checkpoint is read, which loads the model classes anyway.
        from .original_checkpoint import PAD_TOKEN, _conventional_added_tokens, llava_med_config_from_original

        added = _conventional_added_tokens(config_dict)
        mapped = llava_med_config_from_original(
            config_dict, added, config_dict.get("bos_token_id", 1), config_dict.get("eos_token_id", 2),
            added[PAD_TOKEN], vision_tower=kwargs.get("vision_tower"),
        )
        return super().from_dict(mapped, **kwargs)
