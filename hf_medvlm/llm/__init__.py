"""Chat backends shared by the evaluation judge and the data-generation pipelines (docs/llm.md): the
`ChatRequest` / `ChatResponse` interface, `OpenAIChatBackend` (the `openai` client with an on-disk reply cache),
`run_requests` (concurrent, resumable JSONL runs with a token/cost `RunReport`) and `image_to_data_url`.
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
