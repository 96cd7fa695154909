"""A client for OpenAI-compatible chat completion endpoints: OpenAI, Azure OpenAI deployments, vLLM and TGI.

Where the endpoint comes from (first wins):

| setting   | argument      | environment                                                   |
|-----------|---------------|---------------------------------------------------------------|
| endpoint  | `base_url`    | `OPENAI_BASE_URL` (Azure: `AZURE_OPENAI_ENDPOINT`)            |
| model     | `model`       | `HF_MEDVLM_LLM_MODEL` (Azure: the deployment name)            |
| key       | `api_key`     | `OPENAI_API_KEY` (Azure: `AZURE_OPENAI_API_KEY`), may be unset |
| version   | `api_version` | `OPENAI_API_VERSION` (Azure only)                             |

`base_url` is the API root the OpenAI SDK uses: `https://api.openai.com/v1`, `http://host:8000/v1` for vLLM,
`http://host:8080/v1` for TGI; for Azure it is the resource endpoint `https://<name>.openai.azure.com`.

Transient failures (429, 5xx, connection errors, timeouts, malformed bodies) are retried with exponential backoff and
jitter, honouring `Retry-After`; other 4xx fail at once. Replies are cached on disk by request hash when `cache_dir`
is set. One `requests.Session` with a connection pool is shared by all threads, so keep-alive connections are reused.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from .cache import ResponseCache
from .types import ChatBackendError, ChatRequest, ChatResponse, request_key

__all__ = ["OpenAIChatBackend"]

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


class _Retryable(Exception):
    """A failed attempt worth retrying; `retry_after` is the server's requested wait in seconds, if any."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _env(*names: str) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


def parse_retry_after(headers) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` given as seconds or as an HTTP date."""
    if headers.get("retry-after-ms"):
        try:
            return max(float(headers["retry-after-ms"]) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class OpenAIChatBackend:
    """Chat completions over HTTP against any OpenAI-compatible server; thread-safe.

    Args:
        base_url: API root (see the module docstring); default from the environment.
        model: model name (Azure: deployment name) used when a request does not name one.
        api_key: sent as `Authorization: Bearer` (Azure: `api-key` header); default from the environment.
        api_style: `"openai"` (`{base_url}/chat/completions`) or `"azure"`
            (`{base_url}/openai/deployments/{model}/chat/completions?api-version=...`).
        api_version: Azure `api-version` query parameter.
        timeout: seconds to wait for the server on each attempt (connect and each read).
        max_retries: retries after the first attempt for transient failures.
        cache_dir: on-disk reply cache; None disables it.
        backoff_base, backoff_max: the n-th retry waits about `min(backoff_max, backoff_base * 2**n)` seconds
            (half fixed, half random jitter) unless the server sent `Retry-After`.
        max_retry_after: never wait longer than this for a `Retry-After`.
        pool_size: keep-alive connections kept open; set it to at least your concurrency.
        prompt_price_per_million, completion_price_per_million: USD per million tokens, for cost estimates.
        extra_body: extra JSON fields sent with every request (e.g. vLLM's `{"top_k": 1}`).
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
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_retry_after: float = 600.0,
        pool_size: int = 64,
        prompt_price_per_million: float | None = None,
        completion_price_per_million: float | None = None,
        extra_body: dict[str, Any] | None = None,
    ):
        if api_style not in ("openai", "azure"):
            raise ValueError(f"api_style must be 'openai' or 'azure', got {api_style!r}.")
        azure = api_style == "azure"
        self.api_style = api_style
        self.base_url = (base_url or _env(*(["AZURE_OPENAI_ENDPOINT"] if azure else []), "OPENAI_BASE_URL") or "")
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url:
            raise ValueError("no chat endpoint: pass base_url or set OPENAI_BASE_URL (Azure: AZURE_OPENAI_ENDPOINT).")
        self.model = model or _env("HF_MEDVLM_LLM_MODEL")
        if not self.model:
            raise ValueError("no model: pass model (Azure: the deployment name) or set HF_MEDVLM_LLM_MODEL.")
        self.api_key = api_key or _env(*(["AZURE_OPENAI_API_KEY"] if azure else []), "OPENAI_API_KEY")
        self.api_version = api_version or _env("OPENAI_API_VERSION")
        if azure and not self.api_version:
            raise ValueError("api_style='azure' needs api_version (or OPENAI_API_VERSION), e.g. '2024-06-01'.")
        self.name = self.model
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base, self.backoff_max, self.max_retry_after = backoff_base, backoff_max, max_retry_after
        self.prompt_price_per_million = prompt_price_per_million
        self.completion_price_per_million = completion_price_per_million
        self.extra_body = dict(extra_body or {})
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self.json_mode_supported = True  # flips off, with a warning, if the server rejects `response_format`
        self.stats: Counter = Counter()
        self._lock = threading.Lock()
        self._session = self._make_session(pool_size)
        self._sleep = time.sleep  # tests swap this to observe backoff without waiting

    def __repr__(self) -> str:
        return f"OpenAIChatBackend(base_url={self.base_url!r}, model={self.model!r}, api_style={self.api_style!r})"

    def _make_session(self, pool_size: int) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # proxies from the environment would break loopback and private vLLM hosts
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(self._auth_headers())
        session.headers["Content-Type"] = "application/json"
        return session

    def _auth_headers(self) -> dict[str, str]:
        if not self.api_key:
            return {}
        if self.api_style == "azure":
            return {"api-key": self.api_key}
        return {"Authorization": f"Bearer {self.api_key}"}

    def close(self) -> None:
        self._session.close()

    # --- request building -------------------------------------------------------------------------------------

    def url_for(self, model: str) -> str:
        if self.api_style == "azure":
            return f"{self.base_url}/openai/deployments/{model}/chat/completions?api-version={self.api_version}"
        return f"{self.base_url}/chat/completions"

    def payload_for(self, request: ChatRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {"messages": request.messages, "temperature": request.temperature}
        if self.api_style == "openai":
            payload["model"] = request.model or self.model
        if request.max_tokens is not None:
            payload["max_tokens"] = request.max_tokens
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.json_mode and self.json_mode_supported:
            payload["response_format"] = {"type": "json_object"}
        payload.update(self.extra_body)
        return payload

    def cache_key(self, request: ChatRequest) -> str:
        # The endpoint is part of the key: two servers may answer to the same model name (TGI calls every model "tgi").
        return request_key(request, f"{self.api_style}|{self.base_url}|{self.model}|{sorted(self.extra_body.items())}")

    # --- the call -----------------------------------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> ChatResponse:
        key = self.cache_key(request) if self.cache is not None else None
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self._count("cache_hits")
                return hit
        response = self._complete_with_retries(request)
        if key is not None:
            self.cache.put(key, response)
        return response

    def _complete_with_retries(self, request: ChatRequest) -> ChatResponse:
        model = request.model or self.model
        last: _Retryable | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
                self._sleep(self._backoff(attempt - 1, last.retry_after))
            try:
                return self._attempt(request, model)
            except _Retryable as err:
                last = err
                logger.debug("attempt %d for %s failed: %s", attempt + 1, model, err)
        raise ChatBackendError(
            f"{self.url_for(model)} failed after {self.max_retries + 1} attempts; last error: {last}",
            status=last.status, retryable=True,
        )

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after) + random.uniform(0, 0.1 * max(retry_after, 0.1))
        ceiling = min(self.backoff_max, self.backoff_base * 2**retry)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _attempt(self, request: ChatRequest, model: str) -> ChatResponse:
        payload = self.payload_for(request)
        status, headers, body = self._post(self.url_for(model), payload)
        if status == 400 and payload.get("response_format") and b"response_format" in body:
            logger.warning("%s rejected response_format (JSON mode); sending without it from now on.", self.base_url)
            self.json_mode_supported = False
            return self._attempt(request, model)
        if status in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {status}: {_snippet(body)}", status, parse_retry_after(headers))
        if status != 200:
            raise ChatBackendError(f"{self.url_for(model)} returned HTTP {status}: {_snippet(body)}", status=status)
        return self._parse(body, model)

    def _post(self, url: str, payload: dict[str, Any]):
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._count("requests_sent")
        try:
            reply = self._session.post(url, data=data, timeout=(min(self.timeout, 10.0), self.timeout))
            body = reply.content
        except requests.Timeout as err:
            raise _Retryable(f"timed out after {self.timeout:g}s ({type(err).__name__})") from err
        except requests.RequestException as err:
            raise _Retryable(f"connection error: {type(err).__name__}: {err}") from err
        self._count(f"http_{reply.status_code}")
        return reply.status_code, reply.headers, body

    def _parse(self, body: bytes, model: str) -> ChatResponse:
        try:
            data = json.loads(body)
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
            self._count("malformed")
            raise _Retryable(f"malformed reply body ({type(err).__name__}): {_snippet(body)}") from err
        usage = data.get("usage") or {}
        return ChatResponse(
            text=text if isinstance(text, str) else "",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=data.get("model") or model,
            cached=False,
            finish_reason=choice.get("finish_reason"),
        )

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def estimate_cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.prompt_price_per_million is None and self.completion_price_per_million is None:
            return None
        return (prompt_tokens * (self.prompt_price_per_million or 0.0)
                + completion_tokens * (self.completion_price_per_million or 0.0)) / 1e6


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."
