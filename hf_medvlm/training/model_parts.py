"""Where a vision-language model keeps its vision encoder, projector and language model, found from the model itself.

Recipes name three parts (`vision_tower`, `multi_modal_projector`, `language_model`), which architectures name
differently (Idefics3: `vision_model` / `connector` / `text_model`; Qwen-VL: `visual` with a `merger` inside). How
`resolve_parts` finds each (transformers has an accessor for the encoder and the LM, none for the projector) and what a
model without one gets: docs/models.md, "Parts".
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["PART_NAMES", "ModelParts", "resolve_parts"]

PART_NAMES = ("vision_tower", "multi_modal_projector", "language_model")
# Children of an image encoder that map its features into the LM (Qwen-VL's `merger`, Qwen3-VL's
# `deepstack_merger_list`); only looked for when no module outside encoder and LM holds parameters.
_PROJECTOR_WORDS = ("merger", "projector", "connector")


@dataclass(frozen=True)
class ModelParts:
    """Module paths (as in `named_modules()`) of each part. The projector may lie inside the vision tower."""

    vision_tower: tuple[str, ...]
    multi_modal_projector: tuple[str, ...]
    language_model: tuple[str, ...]  # the decoder, then the LM head (kept out of LoRA and quantisation) if any

    def part_of(self, name: str) -> str | None:
        """The part a parameter or module name belongs to (the projector wins over the tower that contains it).

        `name` may carry a wrapper's prefix (PEFT's `base_model.model.`) or suffix (`.modules_to_save.default`).
        """
        for part in ("multi_modal_projector", "vision_tower", "language_model"):
            if any(_within(name, path) for path in getattr(self, part)):
                return part
        return None


def _within(name: str, path: str) -> bool:
    """Whether `name` is `path` or lies under it, possibly behind a wrapper prefix."""
    return name == path or name.startswith(path + ".") or f".{path}." in name or name.endswith("." + path)


def resolve_parts(model: nn.Module) -> ModelParts:
    """The three parts of `model` (a PEFT-wrapped model is resolved through its base model)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = {id(module): name for name, module in base.named_modules()}
    cls = type(base).__name__
    vision = _module_path(base, names, base.get_encoder(modality="image") if hasattr(base, "get_encoder") else None)
    decoder = _module_path(base, names, base.get_decoder() if hasattr(base, "get_decoder") else None)
    if vision is None or decoder is None:
        raise ValueError(
            f"cannot find the image encoder and language model of {cls} (get_encoder(modality='image') -> "
            f"{vision!r}, get_decoder() -> {decoder!r}); its top-level modules are {_children(base)}. hf-medvlm "
            "trains AutoModelForImageTextToText models that expose both"
        )
    head = _module_path(base, names, base.get_output_embeddings())
    language = (decoder,) + ((head,) if head else ())
    encoder = base.get_submodule(vision)
    projector = _outside(base, {vision, *language}) or [
        f"{vision}.{name}" for name, child in encoder.named_children()
        if any(word in name for word in _PROJECTOR_WORDS) and any(True for _ in child.parameters())
    ]
    if not projector:
        raise ValueError(
            f"cannot find the multimodal projector of {cls}: nothing outside its image encoder {vision!r} and "
            f"language model {language} holds parameters, and no child of the encoder is named like a projector "
            f"({_children(encoder)}, looked for {list(_PROJECTOR_WORDS)})"
        )
    return ModelParts((vision,), tuple(projector), language)


def _module_path(base: nn.Module, names: dict[int, str], module) -> str | None:
    if module is None or module is base or module is getattr(base, "base_model", None):
        return None
    return names.get(id(module)) or None


def _children(module: nn.Module) -> list[str]:
    return [name for name, _ in module.named_children()]


def _outside(base: nn.Module, inside: set[str]) -> list[str]:
    """The largest modules (and loose parameters) holding parameters that are neither in nor above `inside`."""
    found: list[str] = []

    def walk(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            path = prefix + name
            if path in inside:
                continue
            if any(p.startswith(path + ".") for p in inside):
                walk(child, path + ".")
            elif any(True for _ in child.parameters()):
                found.append(path)
        found.extend(prefix + name for name, _ in module.named_parameters(recurse=False))

    walk(base, "")
    return found
