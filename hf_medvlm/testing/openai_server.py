"""A loopback OpenAI-compatible chat server for tests, demos and benchmarks (stdlib only, binds 127.0.0.1).

It answers `POST /v1/chat/completions` (also `/chat/completions` and the Azure path
`/openai/deployments/{name}/chat/completions`) and `GET /v1/models`. What it replies is scripted:

- a queue of `Reply`s consumed first, in order (`server.enqueue(Reply.rate_limited(1), Reply("ok"))`), then
- a responder: any callable `body -> Reply | str` (default: a fixed text), e.g. `TransformersResponder` for real
  generation with a tiny local transformers model.

`Reply` covers the failure modes a client must survive: 429 with `Retry-After`, 5xx, malformed bodies, slow replies.
Every request is recorded in `server.requests` (path, query, headers, parsed JSON body, reply status, arrival time).

    with start_openai_server(lambda body: "Yes.") as server:
        backend = OpenAIChatBackend(server.url, model="test")

From a shell, `python -m hf_medvlm.testing.openai_server --port 8000 --text "8 7"` serves a fixed reply until Ctrl-C.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = ["Reply", "RecordedRequest", "OpenAIServer", "start_openai_server", "TransformersResponder", "message_texts"]


@dataclass
class Reply:
    """One scripted reply. `body` (raw bytes) overrides the normal JSON completion, for malformed-body tests."""

    text: str = "OK"
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"

    @classmethod
    def error(cls, status: int, message: str = "error", kind: str = "invalid_request_error",
              retry_after: float | None = None) -> "Reply":
        """An OpenAI-style error body; `retry_after` seconds are sent as `Retry-After`."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return cls(status=status, headers=headers, body=_error_body(message, kind))

    @classmethod
    def rate_limited(cls, retry_after: float | None = 0, message: str = "Rate limit reached") -> "Reply":
        return cls.error(429, message, "rate_limit_error", retry_after)

    @classmethod
    def server_error(cls, status: int = 500, message: str = "Internal server error",
                     retry_after: float | None = None) -> "Reply":
        return cls.error(status, message, "server_error", retry_after)

    @classmethod
    def malformed(cls, body: bytes = b'{"id": "chatcmpl-1", "choices": [{"message": ') -> "Reply":
        return cls(status=200, body=body)

    @classmethod
    def slow(cls, text: str, delay: float) -> "Reply":
        return cls(text=text, delay=delay)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    reply_status: int = 0
    time: float = 0.0


def _error_body(message: str, kind: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind}}).encode()


def message_texts(messages: list[dict]) -> list[str]:
    """All text of OpenAI chat messages (string contents and `text` parts), in order."""
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(part.get("text", "") for part in content if part.get("type") == "text")
    return texts


def _count_tokens(text: str) -> int:
    return len(text.split())  # a stand-in tokenizer: good enough for accounting tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse pooled connections
    disable_nagle_algorithm = True  # headers and body go out as separate writes; don't let Nagle delay the body
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 - quiet test output
        pass

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            body = {"object": "list", "data": [{"id": self.server.owner.model_name, "object": "model"}]}
            return self._send(200, json.dumps(body).encode())
        self._send(404, _error_body(f"no route {self.path}", "not_found"))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        parsed = urllib.parse.urlsplit(self.path)
        record = RecordedRequest(
            method="POST", path=parsed.path, query=dict(urllib.parse.parse_qsl(parsed.query)),
            headers={k.lower(): v for k, v in self.headers.items()}, body=None, time=time.time(),
        )
        try:
            record.body = json.loads(raw)
        except ValueError:
            record.body = raw.decode("utf-8", errors="replace")
        self.server.owner._record(record)
        if not parsed.path.endswith("/chat/completions"):
            record.reply_status = 404
            return self._send(404, _error_body(f"no route {parsed.path}", "not_found"))
        if not isinstance(record.body, dict) or not isinstance(record.body.get("messages"), list):
            record.reply_status = 400
            return self._send(400, _error_body("body must be JSON with a 'messages' list", "invalid_request_error"))
        reply = self.server.owner._next_reply(record.body)
        record.reply_status = reply.status
        if reply.delay:
            time.sleep(reply.delay)
        body = reply.body if reply.body is not None else self._completion(record.body, reply)
        self._send(reply.status, body, reply.headers)

    def _completion(self, request: dict, reply: Reply) -> bytes:
        owner = self.server.owner
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(_count_tokens(t) for t in message_texts(request["messages"]))
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = _count_tokens(reply.text)
        return json.dumps({
            "id": f"chatcmpl-{owner._counter}", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model") or owner.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": reply.finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }).encode()

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to tell it


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "OpenAIServer"

    def handle_error(self, request, client_address):
        pass  # clients that time out and hang up are expected here; the request log says what happened


class OpenAIServer:
    """Handle for a running loopback server: `url` (API root with `/v1`), `root_url` (Azure endpoint), `requests`."""

    def __init__(self, responder: Callable[[dict], Reply | str] | None = None, *, port: int = 0,
                 model_name: str = "loopback-model", default_text: str = "OK"):
        self.responder = responder
        self.model_name = model_name
        self.default_text = default_text
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root_url}/v1"

    def enqueue(self, *replies: Reply | str) -> None:
        """Script the next replies, served in order before the responder is asked."""
        with self._lock:
            self._queue.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)

    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded requests that reached a chat-completions route."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)
            self._counter += 1

    def _next_reply(self, body: dict) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is None:
            return Reply(text=self.default_text)
        reply = self.responder(body)
        return Reply(text=reply) if isinstance(reply, str) else reply

    def serve_forever(self) -> None:
        """Serve on the calling thread until interrupted (the `python -m` entry point)."""
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self._httpd.server_close()

    def start(self) -> "OpenAIServer":
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="openai-loopback", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def __enter__(self) -> "OpenAIServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_openai_server(responder: Callable[[dict], Reply | str] | None = None, *, port: int = 0,
                        model_name: str = "loopback-model", default_text: str = "OK") -> OpenAIServer:
    """Start a loopback server on `port` (0: a free one) and return its handle; `stop()` it or use `with`."""
    return OpenAIServer(responder, port=port, model_name=model_name, default_text=default_text).start()


class TransformersResponder:
    """Serve generations of a local transformers model (`hf_medvlm.llm.local.LocalChatBackend`: a causal LM with its
    tokenizer, or an image-text-to-text model with its processor; images arrive as data URLs). Greedy unless the
    request sets a temperature."""

    def __init__(self, model, processor, max_new_tokens: int = 32):
        from ..llm.local import LocalChatBackend

        self.backend = LocalChatBackend(model, processor, max_new_tokens=max_new_tokens)

    def __call__(self, body: dict) -> Reply:
        from ..llm import ChatRequest

        request = ChatRequest(messages=body["messages"], max_tokens=body.get("max_tokens"), seed=body.get("seed"),
                              temperature=float(body.get("temperature") or 0.0))
        reply = self.backend.complete(request)
        return Reply(text=reply.text, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                     finish_reason=reply.finish_reason or "stop")


def main(argv: list[str] | None = None) -> int:
    """`python -m hf_medvlm.testing.openai_server`: run the loopback server in the foreground."""
    import argparse

    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    parser = argparse.ArgumentParser(
        prog="python -m hf_medvlm.testing.openai_server", formatter_class=Formatter,
        description="A loopback OpenAI-compatible chat server (127.0.0.1 only) that answers every chat request\n"
                    "with a fixed text: try the LLM judge and the generation pipelines without a real endpoint.",
        epilog="example:\n"
               "  python -m hf_medvlm.testing.openai_server --port 8000 --text $'8 7\\nBoth answers are fine.'\n"
               "  hf-medvlm eval --task chat --llm_base_url http://127.0.0.1:8000/v1 --llm_model judge ...\n"
               "  curl http://127.0.0.1:8000/v1/chat/completions -d '{\"messages\": [{\"role\": \"user\", "
               "\"content\": \"hi\"}]}'")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--model_name", default="loopback-model", help="model id listed by GET /v1/models")
    parser.add_argument("--text", default="OK", help="the reply to every chat request")
    args = parser.parse_args(argv)
    server = OpenAIServer(port=args.port, model_name=args.model_name, default_text=args.text)
    print(f"OpenAI-compatible server listening on {server.url}; Ctrl-C to stop", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
