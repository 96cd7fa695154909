"""`OpenAIChatBackend`: the `openai` client (`OpenAI` / `AzureOpenAI`) behind the `complete(request)` interface.

The client retries what fails on the wire with its own back-off (docs/llm.md lists what is retried). Ours around it:
the on-disk reply cache, JSON-mode fallback, a bounded retry of malformed reply bodies (a 200 the client cannot
parse), and errors that name the endpoint and say whether the run can go on (401/403/404 are `fatal`).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from .cache import ResponseCache
from .types import ChatBackendError, ChatRequest, ChatResponse, request_key

__all__ = ["OpenAIChatBackend"]

logger = logging.getLogger(__name__)

# Statuses no retry can fix, whatever the request: they end a whole run.
FATAL_HINT = {401: "check the API key", 403: "the key lacks permission", 404: "check the URL and the model name"}


class _MalformedReply(Exception):
    """A 200 whose body is not a chat completion: a proxy that cut the body, or a gateway's HTML page."""


class OpenAIChatBackend:
    """Chat completions against any OpenAI-compatible server; thread-safe (one `openai` client, one connection pool).

    The arguments are the `llm_*` fields of `ChatEndpointArguments` (their `help` says what each means and its
    environment default); `api_key` defaults to `$OPENAI_API_KEY` (Azure: `$AZURE_OPENAI_API_KEY`), and servers
    without keys get `EMPTY`. `extra_body`: extra JSON fields sent with every request (e.g. vLLM's `{"top_k": 1}`).
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        api_style: str = "openai",
        api_version: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 6,
        cache_dir: str | os.PathLike | None = None,
        *,
        prompt_price_per_million: float | None = None,
        completion_price_per_million: float | None = None,
        extra_body: dict[str, Any] | None = None,
    ):
        if api_style not in ("openai", "azure"):
            raise ValueError(f"api_style must be 'openai' or 'azure', got {api_style!r}.")
        azure = api_style == "azure"
        self.api_style = api_style
        self.base_url = (base_url or os.environ.get("AZURE_OPENAI_ENDPOINT" if azure else "OPENAI_BASE_URL") or "")
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url:
            raise ValueError("no chat endpoint: pass base_url or set OPENAI_BASE_URL (Azure: AZURE_OPENAI_ENDPOINT).")
        self.model = self.name = model or os.environ.get("HF_MEDVLM_LLM_MODEL") or ""
        if not self.model:
            raise ValueError("no model: pass model (Azure: the deployment name) or set HF_MEDVLM_LLM_MODEL.")
        self.max_retries = max_retries
        self.prompt_price_per_million = prompt_price_per_million
        self.completion_price_per_million = completion_price_per_million
        self.extra_body = dict(extra_body or {})
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self.json_mode_supported = True  # flips off, with a warning, if the server rejects `response_format`
        self.client = _make_client(self.base_url, api_key, api_version, timeout, max_retries, azure)

    def __repr__(self) -> str:
        return f"OpenAIChatBackend(base_url={self.base_url!r}, model={self.model!r}, api_style={self.api_style!r})"

    def close(self) -> None:
        self.client.close()

    def cache_key(self, request: ChatRequest) -> str:
        # The endpoint is part of the key: two servers may answer to the same model name (TGI calls every model "tgi").
        return request_key(request, f"{self.api_style}|{self.base_url}|{self.model}|{sorted(self.extra_body.items())}")

    def complete(self, request: ChatRequest) -> ChatResponse:
        key = self.cache_key(request) if self.cache is not None else None
        if key is not None and (hit := self.cache.get(key)) is not None:
            return hit
        response = self._complete_parsed(request)
        if key is not None:
            self.cache.put(key, response)
        return response

    def _complete_parsed(self, request: ChatRequest) -> ChatResponse:
        # The client retries what fails on the wire; a 200 it cannot parse is ours to retry.
        for attempt in range(self.max_retries + 1):
            try:
                return _to_response(self._create(request), request.model or self.model)
            except _MalformedReply as err:
                logger.debug("attempt %d: %s", attempt + 1, err)
                last = err
        raise ChatBackendError(f"{self.base_url} ({self.model}) failed after {_attempts(self.max_retries + 1)}; "
                               f"last error: {last}")

    def _create(self, request: ChatRequest):
        import openai

        kwargs = {
            "model": request.model or self.model, "messages": request.messages, "temperature": request.temperature,
            "max_tokens": request.max_tokens, "seed": request.seed, "extra_body": self.extra_body or None,
            "response_format": {"type": "json_object"} if request.json_mode and self.json_mode_supported else None,
        }
        kwargs = {key: value for key, value in kwargs.items() if value is not None}  # unset: the server's default
        try:
            return self.client.chat.completions.create(**kwargs)
        except json.JSONDecodeError as err:
            raise _MalformedReply(f"malformed reply body (not JSON: {err})") from err
        except openai.BadRequestError as err:
            if "response_format" in kwargs and "response_format" in str(err):
                logger.warning("%s rejected response_format (JSON mode); sending without it from now on.", self.base_url)
                self.json_mode_supported = False
                return self._create(request)
            raise self._error(err) from err
        except openai.APIError as err:
            raise self._error(err) from err

    def _error(self, err) -> ChatBackendError:
        """One sentence naming the endpoint, the status and whether anything can pass."""
        status, url = getattr(err, "status_code", None), err.request.url
        if status in FATAL_HINT:
            return ChatBackendError(
                f"{url} answered HTTP {status} ({_reason(err)}): {FATAL_HINT[status]}; no retry can pass, so the run "
                "stops.", status=status, fatal=True)
        attempts = int(err.request.headers.get("x-stainless-retry-count", 0)) + 1  # the client's own count
        what = f"HTTP {status}: {_reason(err)}" if status else f"{type(err).__name__}: {err}"
        return ChatBackendError(f"{url} failed after {_attempts(attempts)}; last error: {what}", status=status)

    def estimate_cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.prompt_price_per_million is None and self.completion_price_per_million is None:
            return None
        return (prompt_tokens * (self.prompt_price_per_million or 0.0)
                + completion_tokens * (self.completion_price_per_million or 0.0)) / 1e6


def _make_client(base_url: str, api_key: str | None, api_version: str | None, timeout: float, max_retries: int,
                 azure: bool):
    import openai  # here, not at module level: `hf-medvlm <command> --help` must stay fast

    # Proxy variables are ignored: they would route loopback and private vLLM hosts through a corporate proxy.
    common = dict(timeout=timeout, max_retries=max_retries, http_client=openai.DefaultHttpxClient(trust_env=False))
    try:
        if azure:
            return openai.AzureOpenAI(azure_endpoint=base_url, api_key=api_key, api_version=api_version, **common)
        return openai.OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                             **common)
    except openai.OpenAIError as err:  # missing Azure credentials or api-version: a configuration error
        raise ValueError(f"cannot set up the chat endpoint {base_url}: {err}") from err


def _attempts(n: int) -> str:
    return f"{n} attempt" + ("s" if n > 1 else "")


def _reason(err) -> str:
    text = getattr(err, "message", None) or str(err)
    return text.removeprefix(f"Error code: {getattr(err, 'status_code', '')} - ")[:200]


def _to_response(completion, model: str) -> ChatResponse:
    try:
        choice = completion.choices[0]
        text = choice.message.content
    except (IndexError, AttributeError, TypeError) as err:
        raise _MalformedReply(f"malformed reply body (no choices[0].message): {str(completion)[:200]}") from err
    usage = completion.usage
    return ChatResponse(
        text=text if isinstance(text, str) else "",
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        model=completion.model or model,
        finish_reason=choice.finish_reason,
    )
