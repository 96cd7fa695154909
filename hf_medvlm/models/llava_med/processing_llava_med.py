"""LlavaMed processor: CLIP preprocessing with mean-colour square padding, a tokenizer with `<image>`, chat templates.

Images are padded to a square in the CLIP mean colour, centred and deterministic. (The original `expand2square` shifts
the paste offset by a random 0/+1 px; that jitter is documented here and deliberately not reproduced.) Then the image is
resized, centre-cropped and normalised as CLIP does, with Pillow only (no torchvision).

This file is also copied next to saved checkpoints as remote code; it imports only from `transformers` and relative
modules, and reads the packaged `.jinja` templates only when a template is requested by name.
"""

from __future__ import annotations

from pathlib import Path

from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil
from transformers.models.llava.processing_llava import LlavaProcessor

__all__ = [
    "LlavaMedProcessor", "load_chat_template", "CHAT_TEMPLATE_NAMES", "build_llava_med_image_processor",
    "stop_strings_for_template",
]

CHAT_TEMPLATE_NAMES = ("mistral_instruct", "vicuna_v1", "plain", "llava_v0")
IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"


def load_chat_template(name: str) -> str:
    """Return the packaged Jinja chat template `name` (one of `CHAT_TEMPLATE_NAMES`)."""
    if name not in CHAT_TEMPLATE_NAMES:
        raise ValueError(f"unknown chat template {name!r}; choose one of {CHAT_TEMPLATE_NAMES}")
    return (Path(__file__).parent / "chat_templates" / f"{name}.jinja").read_text()


def stop_strings_for_template(chat_template: str | None) -> list[str] | None:
    """Stop strings a model trained with `chat_template` (a packaged name or its Jinja text) needs; None = EOS only."""
    # llava_v0's answers end without EOS: a model trained on it ends an answer by writing the next turn's separator,
    # so generation has to stop on that string (v1.0's eval stopped on "###" as well).
    return ["###"] if chat_template in ("llava_v0", load_chat_template("llava_v0")) else None


def build_llava_med_image_processor(image_size: int = 336, image_aspect_mode: str = "pad") -> LlavaImageProcessorPil:
    """CLIP preprocessing (bicubic shortest-edge resize, centre crop, OpenAI CLIP mean/std), padded to square if asked."""
    if image_aspect_mode not in ("pad", "none"):
        raise ValueError(f"image_aspect_mode must be 'pad' or 'none', got {image_aspect_mode!r}")
    return LlavaImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        do_pad=image_aspect_mode == "pad",
    )


class LlavaMedProcessor(LlavaProcessor):
    """`LlavaProcessor` plus an image-count check and LLaVA-Med chat templates.

    Each `<image>` in the text is expanded to one placeholder per vision feature position (576 for CLIP-336/14 with
    patch tokens only). Any number of images per sample is accepted, in order of their `<image>` markers.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        patch_size=None,
        vision_feature_select_strategy=None,
        chat_template=None,
        image_token="<image>",
        num_additional_image_tokens=0,
        image_start_token=None,
        image_end_token=None,
        **kwargs,
    ):
        # LLaVA-Med v1.0 wraps each image's feature positions in `<im_start>` ... `<im_end>` (learned embeddings).
        # The full signature is spelled out because ProcessorMixin saves exactly the `__init__` arguments.
        self.image_start_token = image_start_token
        self.image_end_token = image_end_token
        super().__init__(
            image_processor, tokenizer, patch_size=patch_size,
            vision_feature_select_strategy=vision_feature_select_strategy, chat_template=chat_template,
            image_token=image_token, num_additional_image_tokens=num_additional_image_tokens, **kwargs,
        )

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        expanded = super().replace_image_token(image_inputs, image_idx, **kwargs)
        return f"{self.image_start_token or ''}{expanded}{self.image_end_token or ''}"

    def _get_num_multimodal_tokens(self, image_sizes=None, **kwargs):
        # Tokens per image in the output, as `replace_image_token` makes them: the v1.0 wrappers count too.
        data = super()._get_num_multimodal_tokens(image_sizes=image_sizes, **kwargs)
        wrappers = [t for t in (self.image_start_token, self.image_end_token) if t]
        if image_sizes is not None and wrappers:
            extra = sum(len(self.tokenizer.encode(t, add_special_tokens=False)) for t in wrappers)
            data.num_image_tokens = [n + extra for n in data.num_image_tokens]
        return data

    def __call__(self, images=None, text=None, **kwargs):
        if text is not None:
            self._check_image_count(images, [text] if isinstance(text, str) else list(text))
        return super().__call__(images=images, text=text, **kwargs)

    def _check_image_count(self, images, texts: list[str]) -> None:
        markers = [t.count(self.image_token) for t in texts]
        if isinstance(images, (list, tuple)) and images and all(isinstance(x, (list, tuple)) for x in images):
            for i, (n_markers, sample) in enumerate(zip(markers, images)):
                if n_markers != len(sample):
                    raise ValueError(f"sample {i} has {n_markers} {self.image_token} token(s) in its text but "
                                     f"{len(sample)} image(s)")
            return
        n_images = 0 if images is None else (len(images) if isinstance(images, (list, tuple)) else 1)
        if sum(markers) != n_images:
            raise ValueError(
                f"the text has {sum(markers)} {self.image_token} token(s) in total but {n_images} image(s) were given"
            )

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer,
        image_size: int = 336,
        patch_size: int = 14,
        image_aspect_mode: str = "pad",
        chat_template: str = "mistral_instruct",
        vision_feature_select_strategy: str = "default",
        image_start_token: str | None = None,
        image_end_token: str | None = None,
    ) -> "LlavaMedProcessor":
        """Build a processor around an LM tokenizer: adds `<image>` (and `<pad>` if there is no pad token), and
        `image_start_token`/`image_end_token` when given and not in the vocabulary yet (a fresh v1.0-style model).

        `chat_template` is a packaged template name (`mistral_instruct`, `vicuna_v1`, `plain`, `llava_v0`) or a Jinja
        string.
        """
        add_image_and_pad_tokens(tokenizer)
        wrap = [t for t in (image_start_token, image_end_token) if t and t not in tokenizer.get_vocab()]
        if wrap:
            tokenizer.add_special_tokens({"additional_special_tokens": wrap}, replace_extra_special_tokens=False)
        template = load_chat_template(chat_template) if chat_template in CHAT_TEMPLATE_NAMES else chat_template
        return cls(
            image_processor=build_llava_med_image_processor(image_size, image_aspect_mode),
            tokenizer=tokenizer,
            patch_size=patch_size,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=template,
            image_token=IMAGE_TOKEN,
            # CLIP prepends a CLS token; "default" drops it again, so 336/14 gives 24*24 = 576 positions.
            num_additional_image_tokens=1,
            image_start_token=image_start_token,
            image_end_token=image_end_token,
        )


def add_image_and_pad_tokens(tokenizer) -> dict[str, int]:
    """Add `<image>` (and `<pad>` when missing) as special tokens; left padding for batched generation."""
    added = {}
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]}, replace_extra_special_tokens=False)
        added[IMAGE_TOKEN] = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        added[PAD_TOKEN] = tokenizer.pad_token_id
    # Batched generation needs left padding; init_kwargs makes it survive save_pretrained.
    tokenizer.padding_side = "left"
    tokenizer.init_kwargs["padding_side"] = "left"
    return added
