"""Chat backends shared by the evaluation judge and the data-generation pipelines.

- `ChatRequest` / `ChatResponse`: the one interface; a backend is any object with `name` and `complete(request)`.
- `OpenAIChatBackend`: the `openai` client (OpenAI, Azure OpenAI, vLLM, TGI, LiteLLM) with an on-disk reply cache;
  401/403/404 are `ChatBackendError(fatal=True)` and stop a run.
- `run_requests`: concurrent, resumable JSONL runs keyed by id, with a token/cost `RunReport`.
- `image_to_data_url`: images as base64 data URLs for `image_url` message parts.
"""

from .cache import ResponseCache
from .configuration import ChatEndpointArguments
from .openai_backend import OpenAIChatBackend
from .runner import RunReport, read_results, run_requests
from .types import ChatBackendError, ChatRequest, ChatResponse, image_to_data_url, request_key

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "ChatBackendError",
    "ChatEndpointArguments",
    "OpenAIChatBackend",
    "ResponseCache",
    "RunReport",
    "image_to_data_url",
    "read_results",
    "request_key",
    "run_requests",
]
