"""How many tokens each image becomes in a processor's output, for any processor, without decoding a dataset image.

A processor replaces each image placeholder of the rendered chat (`<image>`, Qwen-VL's `<|image_pad|>`, Gemma 3's
`<start_of_image>`) by an expansion: 576 `<image>` tokens for CLIP-336/14; for Qwen2-VL one token per 2x2 patches
of the image resized to its dynamic resolution; for Idefics3/SmolVLM a global image plus one block per tile of the
split image, with row/column markers; for Gemma 3 `\n\n<start_of_image>` + 256 soft tokens + `<end_of_image>\n\n`.
`_get_num_multimodal_tokens` does not say this uniformly (Gemma 3's counts only the soft tokens), so the expansion is
taken from the processor itself: it is run once on a blank image of each size class, and the dataset's images are
only measured (their header gives the size; EXIF rotation applied, as `datasets` does when decoding).

A processor whose expansion is the same at every probe size (tiny, wide, tall, square, large) is fixed-size: then no
image size is read at all. Otherwise expansions are cached by the processor's own size count
(`_get_num_multimodal_tokens`) where that separates the probe sizes correctly, else by image size; where every probe
expansion is the placeholder repeated that count's times (Qwen-VL), a new count needs no run of the processor.

Where every expansion begins and ends with an added token, tokenisation cannot merge it with the text around it and
a row's length is its rendered text's token count plus each expansion's extra tokens. Otherwise (Gemma 3's newlines)
the expansions are put into the text and the whole row is tokenised.
"""

from __future__ import annotations

import io

from PIL import Image

__all__ = ["ImageExpansion", "image_size", "PROBE_SIZES"]

# (height, width): tiny, wide, tall, square, long strip, large.
PROBE_SIZES = ((32, 32), (224, 448), (448, 224), (1000, 1000), (64, 1024), (1536, 1152))
_EXIF_ORIENTATION = 0x0112
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class ImageExpansion:
    """The token ids `processor` puts in place of one image placeholder, by image size."""

    def __init__(self, processor):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.placeholder = getattr(processor, "image_token", None)
        if not self.placeholder:
            raise ValueError(f"{type(processor).__name__} names no image placeholder (processor.image_token), so the "
                             "length of its rows cannot be measured")
        probes = {size: self._expand(size) for size in PROBE_SIZES}
        self.fixed = len(set(probes.values())) == 1
        self._by_count = not self.fixed and self._counts_separate(probes)
        self._cache = dict(zip(self._keys(list(probes)), probes.values()))
        added = set(self.tokenizer.added_tokens_decoder)
        self._placeholder_id = self.tokenizer.convert_tokens_to_ids(self.placeholder)
        self.bounded = self._placeholder_id in added and all(ids[0] in added and ids[-1] in added
                                                              for ids in probes.values())
        # Qwen-VL: the expansion is the placeholder repeated as often as the processor counts; no need to run it.
        self._repeats = self._by_count and all(ids == (self._placeholder_id,) * key[0]
                                               for key, ids in self._cache.items())
        self._texts: dict[tuple[int, ...], str] = {}

    def ids(self, size: tuple[int, int] | None = None) -> tuple[int, ...]:
        """The expansion of one image of `size` (height, width); any size for a fixed-size processor."""
        if size is None and not self.fixed:
            raise ValueError(f"{type(self.processor).__name__}'s image token count depends on each image's size; "
                             "give the size")
        return self._expansions([size])[0]

    def _expansions(self, sizes: list) -> list[tuple[int, ...]]:
        """`ids` of many sizes, asking the processor's size count once for all of them."""
        keys = self._keys(sizes)
        for key, size in zip(keys, sizes):
            if key not in self._cache:
                self._cache[key] = (self._placeholder_id,) * key[0] if self._repeats else self._expand(size)
        return [self._cache[key] for key in keys]

    def lengths(self, conversations: list[list[dict]], images: list, names: list[str] | None = None) -> list[int]:
        """Length of each row as `DataCollatorForVisionLanguageModeling` builds it without truncation.

        `conversations` must already hold one image block per image (`prepare_multimodal_messages`); `images[i]` is
        row i's image count (enough when `fixed`) or its list of (height, width) sizes; `names[i]` names the row in
        errors. No image is decoded.
        """
        texts = self.processor.apply_chat_template(conversations, tokenize=False)
        rows = [[None] * n if isinstance(n, int) else list(n) for n in images]
        for i, (text, sizes) in enumerate(zip(texts, rows)):
            if text.count(self.placeholder) != len(sizes):  # e.g. a literal placeholder typed in a question
                raise ValueError(f"row {names[i] if names else i!r}: the rendered chat has "
                                 f"{text.count(self.placeholder)} {self.placeholder} placeholder(s) but the row has "
                                 f"{len(sizes)} image(s): {text[:200]!r}")
        flat = iter(self._expansions([size for sizes in rows for size in sizes]))
        per_row = [[next(flat) for _ in sizes] for sizes in rows]
        if self.bounded:
            ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            return [len(row) + sum(len(e) - 1 for e in expansions) for row, expansions in zip(ids, per_row)]
        expanded = [self._expanded_text(text, expansions) for text, expansions in zip(texts, per_row)]
        return [len(row) for row in self.tokenizer(expanded, add_special_tokens=False)["input_ids"]]

    def _expand(self, size: tuple[int, int]) -> tuple[int, ...]:
        height, width = size
        blank = Image.new("RGB", (width, height))
        output = self.processor(text=[self.placeholder], images=[[blank]], add_special_tokens=False)
        return tuple(int(i) for i in output["input_ids"][0])

    def _keys(self, sizes: list) -> list:
        if self.fixed:  # one expansion for every size: no size is read
            return [()] * len(sizes)
        return self._count_keys(sizes) if self._by_count else [tuple(size) for size in sizes]

    def _count_keys(self, sizes: list) -> list:
        if not sizes:
            return []
        data = self.processor._get_num_multimodal_tokens(image_sizes=[tuple(size) for size in sizes])
        patches = getattr(data, "num_image_patches", None) or [None] * len(sizes)
        return list(zip(data.num_image_tokens, patches))

    def _counts_separate(self, probes: dict) -> bool:
        """Whether the processor's own count tells apart every two probe sizes whose expansions differ."""
        try:
            keys = dict(zip(probes, self._count_keys(list(probes))))
        except (AttributeError, NotImplementedError, TypeError, ValueError):
            return False
        return all(probes[a] == probes[b] for a in probes for b in probes if keys[a] == keys[b])

    def _expanded_text(self, text: str, expansions: list) -> str:
        parts = text.split(self.placeholder)
        return parts[0] + "".join(self._text(e) + part for e, part in zip(expansions, parts[1:]))

    def _text(self, ids: tuple[int, ...]) -> str:
        if ids not in self._texts:
            text = self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
            if tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"]) != ids:
                raise ValueError(f"cannot measure rows for {type(self.processor).__name__}: its image expansion "
                                 f"does not survive decoding and re-tokenising ({text[:80]!r}...)")
            self._texts[ids] = text
        return self._texts[ids]


def image_size(image: dict) -> tuple[int, int]:
    """(height, width) of an undecoded `datasets.Image` value (`{"bytes", "path"}`), from its header only.

    EXIF orientation is read from what the header holds (JPEG's APP1; a PNG eXIf chunk before the pixel data):
    `getexif()` would decode a PNG to look further.
    """
    source = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
    with Image.open(source) as opened:
        width, height = opened.size
        exif = Image.Exif()
        exif.load(opened.info.get("exif") or b"")
    if exif.get(_EXIF_ORIENTATION) in _ROTATED:
        width, height = height, width
    return height, width
