"""Tiny random models of other VLM families than LlavaMed, built from config offline, for tests and examples.

Each is the family's real transformers classes (model, processor, image processor) at tiny sizes, with the family's
real chat template and special-token strings, so what depends on the family is exercised for real: the template and
its assistant mask, the image placeholders and how the processor expands them, stop tokens, module layout.

- Chat templates: the copies TRL ships in `trl/chat_templates/` (`qwen2_5_vl.jinja`, `smolvlm.jinja`,
  `gemma3.jinja`), which TRL keeps byte-identical to the Hub checkpoints' templates (its README names the repos).
- Vocabulary: the Llama-2 BPE tokenizer of the tiny LlavaMed (`wordllama` package) plus the family's special tokens,
  without Llama's dummy-prefix space (neither Qwen's, SmolLM's nor Gemma's tokenizer adds one); the family's own
  vocabulary would need a download.
- Stop tokens: `generation_config.eos_token_id` as the real checkpoints ship it (Qwen2.5-VL-Instruct:
  `<|im_end|>`, `<|endoftext|>`; SmolVLM-Instruct: `<end_of_utterance>`; Gemma 3 / MedGemma-it: `<eos>`,
  `<end_of_turn>`).

`build_tiny_smolvlm` is SmolVLM (v1): `model_type` `idefics3`, as `HuggingFaceTB/SmolVLM-Instruct` ships it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import transformers
from tokenizers import Tokenizer, decoders, normalizers
from transformers import PreTrainedTokenizerFast
from transformers.utils import is_torchvision_available
from transformers.video_processing_utils import VideoProcessorMixin

from . import TINY_TEXT, TINY_VISION, _random_model, _wordllama_tokenizer_file

__all__ = ["build_tiny_qwen2_5_vl", "build_tiny_smolvlm", "build_tiny_gemma3", "trl_chat_template",
           "allow_image_only_video_processors"]


def trl_chat_template(name: str) -> str:
    """A chat template as TRL ships it (`trl/chat_templates/<name>.jinja`, a copy of the Hub checkpoint's)."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text()


def _tokenizer(special: list[str], **kwargs) -> PreTrainedTokenizerFast:
    """The Llama-2 BPE with the family's special tokens, no dummy-prefix space and no automatic BOS (templates write
    their own), as Gemma's SentencePiece BPE is set up."""
    backend = Tokenizer.from_file(str(_wordllama_tokenizer_file()))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    backend.post_processor = None
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", **kwargs)
    tokenizer.add_tokens([t for t in special if t not in tokenizer.get_vocab()], special_tokens=True)
    return tokenizer


# ------------------------------------------------------------------------------------------------------ Qwen2.5-VL
QWEN_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
               "<|video_pad|>"]


def build_tiny_qwen2_5_vl(seed: int = 0):
    """Qwen2.5-VL: dynamic resolution (8 px patches, 2x2 merge: 16 px per image token, 4 to 16 tokens per image)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers import Qwen2VLImageProcessorPil

    tokenizer = _tokenizer(QWEN_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    end, _, im_end, vis_start, vis_end, image, video = tokenizer.convert_tokens_to_ids(QWEN_TOKENS)
    config = Qwen2_5_VLConfig(
        text_config=dict(**TINY_TEXT, vocab_size=len(tokenizer), bos_token_id=end, eos_token_id=im_end,
                         pad_token_id=end,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           patch_size=8, spatial_merge_size=2, temporal_patch_size=2, window_size=32,
                           fullatt_block_indexes=[1]),
        image_token_id=image, video_token_id=video, vision_start_token_id=vis_start, vision_end_token_id=vis_end,
    )
    image_processor = Qwen2VLImageProcessorPil(patch_size=8, merge_size=2, temporal_patch_size=2,
                                               min_pixels=32 * 32, max_pixels=64 * 64)
    allow_image_only_video_processors()
    video_processor = transformers.Qwen2VLVideoProcessor() if is_torchvision_available() else NoVideoProcessor()
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                    video_processor=video_processor, chat_template=trl_chat_template("qwen2_5_vl"))
    return _random_model(Qwen2_5_VLForConditionalGeneration, config, seed, [im_end, end], end), processor


# ---------------------------------------------------------------------------------------------- SmolVLM (Idefics3)
SMOLVLM_TOKENS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                  "<global-img>"] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]


def build_tiny_smolvlm(seed: int = 0):
    """SmolVLM (Idefics3 classes): images up to 64 px split into 32 px tiles plus a global view, 4 tokens per tile."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil
    from transformers import Idefics3Processor

    tokenizer = _tokenizer(SMOLVLM_TOKENS, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                           pad_token="<|endoftext|>")
    end, start, eou, _, image = tokenizer.convert_tokens_to_ids(SMOLVLM_TOKENS[:5])
    config = Idefics3Config(
        text_config=dict(model_type="llama", **TINY_TEXT, vocab_size=len(tokenizer), bos_token_id=start,
                         eos_token_id=eou, pad_token_id=end),
        vision_config=dict(TINY_VISION),
        scale_factor=2, image_token_id=image,
    )
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                  chat_template=trl_chat_template("smolvlm"))
    return _random_model(Idefics3ForConditionalGeneration, config, seed, [eou], end), processor


# ---------------------------------------------------------------------------------------------- Gemma 3 / MedGemma
GEMMA_TOKENS = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
                "<image_soft_token>"]


def build_tiny_gemma3(seed: int = 0):
    """Gemma 3 (MedGemma's architecture): SigLIP tower at 32 px / patch 8, pooled to 4 soft tokens per image."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor

    image_tokens = dict(boi_token="<start_of_image>", eoi_token="<end_of_image>", image_token="<image_soft_token>")
    tokenizer = _tokenizer(GEMMA_TOKENS, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                           extra_special_tokens=image_tokens)
    pad, eos, bos, _, end_of_turn, boi, eoi, soft = tokenizer.convert_tokens_to_ids(GEMMA_TOKENS)
    config = Gemma3Config(
        text_config=dict(**TINY_TEXT, head_dim=8, vocab_size=len(tokenizer), sliding_window=64, bos_token_id=bos,
                         eos_token_id=[eos, end_of_turn], pad_token_id=pad),
        vision_config=dict(TINY_VISION),
        mm_tokens_per_image=4, boi_token_index=boi, eoi_token_index=eoi, image_token_index=soft,
    )
    processor = Gemma3Processor(image_processor=Gemma3ImageProcessorPil(size={"height": 32, "width": 32}),
                                tokenizer=tokenizer, image_seq_length=4, chat_template=trl_chat_template("gemma3"))
    return _random_model(Gemma3ForConditionalGeneration, config, seed, [eos, end_of_turn], pad), processor


# ------------------------------------------------------------------------------------- Qwen-VL without torchvision
class NoVideoProcessor(VideoProcessorMixin):
    """Stands in for a video processor where torchvision is missing; refuses videos."""

    def __call__(self, videos, **kwargs):
        raise RuntimeError("videos need torchvision (transformers' video processors); this stand-in has none")

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        return cls()


@functools.cache
def allow_image_only_video_processors() -> None:
    """Let Qwen-VL processors be built, saved and loaded without torchvision, for images only. Idempotent.

    transformers 5 makes every Qwen2-VL / Qwen2.5-VL processor hold a video processor, which exists only with
    torchvision (its own tests require torchvision for them); the CPU test machines have none. Where it is missing,
    the processor holds a `NoVideoProcessor` instead, and loading one back yields the same. Nothing changes where
    torchvision is installed. Tests only: the package itself never calls this.
    """
    if is_torchvision_available():
        return
    from transformers import processing_utils

    # The processor checks its video processor's class by name on the `transformers` module, where it is not exported
    # without torchvision, and loads it through AutoVideoProcessor, which needs torchvision.
    setattr(transformers, "VideoProcessorMixin", VideoProcessorMixin)
    processing_utils._LazyAutoProcessorMapping._MAPPING_NAMES["video_processor"] = (__name__, "NoVideoProcessor")
