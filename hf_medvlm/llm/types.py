"""The backend-neutral request/response pair every chat backend speaks, and image → data-URL encoding. A backend is
any object with a `name` and `complete(request: ChatRequest) -> ChatResponse`: `OpenAIChatBackend` and the local
transformers backend (`hf_medvlm.llm.local`) both are.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["ChatRequest", "ChatResponse", "ChatBackendError", "image_to_data_url", "request_key"]


@dataclass
class ChatRequest:
    """One chat completion request.

    `messages` are OpenAI chat messages: `{"role": ..., "content": str | list[part]}` where a part is
    `{"type": "text", "text": ...}` or `{"type": "image_url", "image_url": {"url": image_to_data_url(img)}}`.
    `model=None` means the backend's default model; `json_mode` asks for a JSON object reply where the server can.
    """

    messages: list[dict[str, Any]]
    model: str | None = None
    temperature: float = 0.0
    max_tokens: int | None = None
    json_mode: bool = False
    seed: int | None = None

    def __post_init__(self):
        if not isinstance(self.messages, list) or not self.messages:
            raise ValueError("ChatRequest.messages must be a non-empty list of chat messages.")
        for i, message in enumerate(self.messages):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise ValueError(f"ChatRequest.messages[{i}] must be a dict with 'role' and 'content'.")


@dataclass
class ChatResponse:
    """A completed reply. `cached` is True when it came from the on-disk cache (no request was sent)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None
    cached: bool = False
    finish_reason: str | None = None


class ChatBackendError(RuntimeError):
    """A request that failed for good (a status no retry fixes, or retries exhausted); the message says why.
    `fatal`: no other request can pass either (wrong key, URL or model), so a run stops at once."""

    def __init__(self, message: str, *, status: int | None = None, fatal: bool = False):
        super().__init__(message)
        self.status = status
        self.fatal = fatal


def request_key(request: ChatRequest, backend_name: str = "") -> str:
    """A stable hash of everything that determines a reply: the cache key and the resume fingerprint."""
    payload = {"backend": backend_name, **asdict(request)}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def image_to_data_url(image, image_format: str = "PNG", quality: int = 90) -> str:
    """Encode a PIL image (or an image file path, or raw bytes) as a `data:image/...;base64,...` URL.

    PNG (lossless) by default so that what the judge sees is the pixels we have; pass `image_format="JPEG"` to send
    fewer bytes for large photographs.
    """
    image_format = image_format.upper()
    if isinstance(image, (str, Path, bytes, bytearray)):
        from PIL import Image

        with Image.open(io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else image) as opened:
            image = opened.copy()  # copy() loads the pixels, so the file can be closed
    if image_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")  # JPEG has no alpha or palette
    buffer = io.BytesIO()
    save_kwargs = {"quality": quality} if image_format == "JPEG" else {}
    image.save(buffer, format=image_format, **save_kwargs)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{image_format.lower()};base64,{encoded}"
