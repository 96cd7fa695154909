"""Batched, deterministic answer generation for evaluation.

Greedy decoding by default (the same answers on every run; the original eval scripts sampled at T=0.2/0.7), a fixed
`max_new_tokens`, stop at the model's own stop tokens only (`generation_config.eos_token_id`: `</s>` for LlavaMed,
`<|im_end|>` for Qwen-VL, `<end_of_utterance>` for SmolVLM, `<end_of_turn>` for Gemma 3; LLaVA-Med v1.5's
`mistral_instruct` stop string is empty, which cut answers after one token) or at the stop strings the checkpoint's
generation config names (v1.0's "###"), left padding, any number of images per
question. Prompts are built by the processor's own `apply_chat_template`, as TRL's collator builds training rows, so
any image-text-to-text family works. Questions are sorted by prompt length before batching so that padding stays
small; answers come back in the input order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

__all__ = ["GenerationSettings", "build_messages", "generate_answers", "cut_at_stop_strings", "stop_token_ids"]


@dataclass
class GenerationSettings:
    max_new_tokens: int = 1024
    batch_size: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    num_beams: int = 1


def build_messages(question: str, num_images: int = 1) -> list[dict]:
    """One user turn: the images first (as LLaVA-Med v1.5 prompts put `<image>` first), then the question."""
    content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": question}]
    return [{"role": "user", "content": content}]


def _encode(processor, questions: Sequence[str], images: Sequence[Sequence]) -> dict:
    conversations = [build_messages(q, len(imgs)) for q, imgs in zip(questions, images)]
    for messages, imgs in zip(conversations, images):
        for block, img in zip(messages[0]["content"], imgs):  # the image blocks come first, for apply_chat_template
            block["image"] = img.convert("RGB") if img.mode != "RGB" else img
    processor.tokenizer.padding_side = "left"  # batched generation appends on the right
    return processor.apply_chat_template(
        conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        # The chat template already writes BOS.
        processor_kwargs={"padding": True, "padding_side": "left", "add_special_tokens": False},
    )


def stop_token_ids(model, tokenizer) -> list[int]:
    """The model's own stop tokens (`generation_config.eos_token_id`, one id or several), else the tokenizer's EOS."""
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, (list, tuple)) else [configured]
    ids = [int(i) for i in ids if i is not None]
    return ids or [tokenizer.eos_token_id]


@torch.inference_mode()
def _generate_batch(model, processor, questions, images, settings: GenerationSettings) -> list[str]:
    inputs = _encode(processor, questions, images).to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    kwargs = dict(max_new_tokens=settings.max_new_tokens, do_sample=settings.do_sample, num_beams=settings.num_beams)
    if settings.do_sample:
        kwargs["temperature"] = settings.temperature
    tokenizer = processor.tokenizer
    stops = stop_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    # `tokenizer` lets generate honour the checkpoint's stop strings (LLaVA-Med v1.0 answers end with "###").
    output = model.generate(**inputs, **kwargs, eos_token_id=stops, pad_token_id=pad, tokenizer=tokenizer)
    new_tokens = output[:, inputs["input_ids"].shape[1]:]
    stops = model.generation_config.stop_strings or []
    return [cut_at_stop_strings(text, stops) for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def cut_at_stop_strings(text: str, stop_strings) -> str:
    """The answer before the first stop string (which generation leaves in the output), stripped."""
    for stop in [stop_strings] if isinstance(stop_strings, str) else stop_strings:
        text = text.split(stop, 1)[0]
    return text.strip()


def generate_answers(
    model,
    processor,
    questions: Sequence[str],
    images: Sequence[Sequence],
    settings: GenerationSettings | None = None,
    progress: bool = True,
    desc: str = "generating",
) -> list[str]:
    """Answer each question (with its list of PIL images) in batches; returns answers in the input order."""
    settings = settings or GenerationSettings()
    if len(questions) != len(images):
        raise ValueError(f"{len(questions)} questions but {len(images)} image lists")
    lengths = [len(processor.tokenizer(q).input_ids) + 1000 * len(imgs) for q, imgs in zip(questions, images)]
    order = sorted(range(len(questions)), key=lambda i: lengths[i])
    answers: dict[int, str] = {}
    with tqdm(total=len(questions), desc=desc, disable=not progress) as bar:
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            texts = _generate_batch(model, processor, [questions[i] for i in batch], [images[i] for i in batch],
                                    settings)
            answers.update(zip(batch, texts))
            bar.update(len(batch))
    return [answers[i] for i in range(len(questions))]
