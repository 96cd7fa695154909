"""A local transformers chat backend with the same ``complete(request) -> ChatResponse`` interface as the
OpenAI-compatible client, so every generation pipeline can run without a server.

- A text LLM (``AutoModelForCausalLM`` + tokenizer) for the "blind" LLaVA-Med self-instruct method: image parts are
  refused with a clear error, since a text model cannot see them.
- Any image-text-to-text model with a processor and a chat template (``AutoModelForImageTextToText``, including
  LlavaMed) for the "unblinded" PubMedVision and BioMed-VITAL methods: ``image_url`` data URLs are decoded back to
  PIL images and passed to the processor in order.

Generation is serialised with a lock: ``run_requests`` may call ``complete`` from many threads, and one model on one
device gains nothing from concurrent ``generate`` calls.
"""

from __future__ import annotations

import base64
import io
import threading

import torch
from PIL import Image

from .types import ChatRequest, ChatResponse

__all__ = ["LocalChatBackend", "decode_data_url", "to_hf_messages"]


def decode_data_url(url: str) -> Image.Image:
    """``data:image/png;base64,...`` -> RGB PIL image."""
    if not url.startswith("data:") or "," not in url:
        raise ValueError(f"the local backend only accepts base64 data URLs for images, got {url[:40]!r}")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def _convert_part(part, images: list) -> dict:
    if isinstance(part, str) or part.get("type") == "text":
        return {"type": "text", "text": part if isinstance(part, str) else part["text"]}
    if part.get("type") == "image_url":
        url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
        images.append(decode_data_url(url))
        return {"type": "image"}
    raise ValueError(f"unsupported message part type {part.get('type')!r} (expected 'text' or 'image_url')")


def to_hf_messages(messages: list[dict]) -> tuple[list[dict], list[Image.Image]]:
    """OpenAI chat messages -> transformers chat-template messages (``{"type": "image"}`` blocks) and the images."""
    images: list = []
    converted = []
    for message in messages:
        parts = [message["content"]] if isinstance(message["content"], str) else message["content"]
        converted.append({"role": message["role"], "content": [_convert_part(p, images) for p in parts]})
    return converted, images


class LocalChatBackend:
    """Run chat requests on a local transformers model.

    Example:
        >>> backend = LocalChatBackend.from_pretrained("microsoft/llava-med-v1.5-mistral-7b")  # doctest: +SKIP
        >>> backend.complete(ChatRequest(messages=[{"role": "user", "content": "Hello"}])).text  # doctest: +SKIP
    """

    def __init__(self, model, processor, *, name: str | None = None, max_new_tokens: int = 512):
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.is_multimodal = hasattr(processor, "image_processor")
        self.name = name or f"local:{getattr(model, 'name_or_path', '') or type(model).__name__}"
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, *, max_new_tokens: int = 512, **kwargs) -> LocalChatBackend:
        """Load a model and its processor (a tokenizer for text LLMs): image-text-to-text when the checkpoint ships an
        image processor."""
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(model_name_or_path)
        model_class = AutoModelForImageTextToText if hasattr(processor, "image_processor") else AutoModelForCausalLM
        model = model_class.from_pretrained(model_name_or_path, **kwargs)
        return cls(model, processor, name=f"local:{model_name_or_path}", max_new_tokens=max_new_tokens)

    def _inputs(self, request: ChatRequest) -> dict:
        messages, images = to_hf_messages(request.messages)
        engine = self.processor
        if not self.is_multimodal:
            if images:
                raise ValueError(f"{self.name} is a text-only model but the request holds {len(images)} image(s)")
            # Tokenizers' chat templates expect plain-string content.
            messages = [{"role": m["role"], "content": "".join(b["text"] for b in m["content"])} for m in messages]
            engine = self.tokenizer
        prompt = engine.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        kwargs = {"images": images} if images else {}
        return engine(text=prompt, return_tensors="pt", add_special_tokens=False, **kwargs)

    def complete(self, request: ChatRequest) -> ChatResponse:
        inputs = self._inputs(request).to(self.model.device)
        sample = request.temperature > 0
        generate_kwargs = dict(
            max_new_tokens=request.max_tokens or self.max_new_tokens, do_sample=sample,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        if sample:
            generate_kwargs["temperature"] = request.temperature
        with self._lock, torch.inference_mode():
            if request.seed is not None:
                torch.manual_seed(request.seed)
            # `tokenizer` lets generate honour stop strings in the generation config (LLaVA-Med v1.0's "###").
            output = self.model.generate(**inputs, **generate_kwargs, tokenizer=self.tokenizer)
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output[0, prompt_length:]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        stops = self.model.generation_config.stop_strings or []
        for stop in [stops] if isinstance(stops, str) else stops:
            text = text.split(stop, 1)[0]
        finish = "length" if len(new_tokens) >= generate_kwargs["max_new_tokens"] else "stop"
        return ChatResponse(
            text=text, prompt_tokens=int(prompt_length), completion_tokens=int(len(new_tokens)),
            model=self.name, finish_reason=finish,
        )
