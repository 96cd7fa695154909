"""A loopback OpenAI-compatible chat server for tests, demos and benchmarks (stdlib only, binds 127.0.0.1).

It answers `POST /v1/chat/completions` (also `/chat/completions` and the Azure path
`/openai/deployments/{name}/chat/completions`) and `GET /v1/models`. Replies are scripted: queued `Reply`s first, in
order (`server.enqueue`; 429 with `Retry-After`, 5xx, malformed bodies, slow replies), then the responder, any
callable `body -> Reply | str` (default: a fixed text; `TransformersResponder`, `CannedResponder`). Every request is
recorded in `server.requests`. Usage and the `python -m` entry point: docs/llm.md.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from ._loopback import LoopbackHandler, LoopbackServer

__all__ = ["Reply", "RecordedRequest", "OpenAIServer", "start_openai_server", "TransformersResponder",
           "CannedResponder", "message_texts"]


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
        body = json.dumps({"error": {"message": message, "type": kind}}).encode()
        return cls(status=status, headers=headers, body=body)

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


class _Handler(LoopbackHandler):
    server: "OpenAIServer"

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            return self.send_json({"object": "list", "data": [{"id": self.server.model_name, "object": "model"}]})
        self._send(Reply.error(404, f"no route {self.path}", "not_found"))

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parsed = urllib.parse.urlsplit(self.path)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        record = RecordedRequest("POST", parsed.path, dict(urllib.parse.parse_qsl(parsed.query)),
                                 {k.lower(): v for k, v in self.headers.items()}, body, time=time.time())
        self.server._record(record)
        if not parsed.path.endswith("/chat/completions"):
            reply = Reply.error(404, f"no route {parsed.path}", "not_found")
        elif not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            reply = Reply.error(400, "body must be JSON with a 'messages' list")
        else:
            reply = self.server._next_reply(body)
        record.reply_status = reply.status
        time.sleep(reply.delay)
        self._send(reply, body)

    def _completion(self, request: dict, reply: Reply) -> bytes:
        # Words stand in for tokens: good enough for accounting tests.
        words = sum(len(text.split()) for text in message_texts(request["messages"]))
        prompt_tokens = words if reply.prompt_tokens is None else reply.prompt_tokens
        completion_tokens = len(reply.text.split()) if reply.completion_tokens is None else reply.completion_tokens
        return json.dumps({
            "id": f"chatcmpl-{self.server._counter}", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model") or self.server.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": reply.finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }).encode()

    def _send(self, reply: Reply, request: dict | None = None):
        """`reply.body`, or else the completion of `request` that `reply` scripts. A client that gave up (a timeout
        test) breaks the pipe: `OpenAIServer.handle_error` keeps that quiet."""
        self.send_json(reply.body if reply.body is not None else self._completion(request, reply), reply.status,
                       reply.headers)


class OpenAIServer(LoopbackServer):
    """A loopback server (`start()` it, or use `start_openai_server`): `url` (API root with `/v1`), `root_url` (Azure
    endpoint), `requests`."""

    def __init__(self, responder: Callable[[dict], Reply | str] | None = None, *, port: int = 0,
                 model_name: str = "loopback-model", default_text: str = "OK"):
        super().__init__(_Handler, port)
        self.url = f"{self.root_url}/v1"
        self.responder = responder
        self.model_name = model_name
        self.default_text = default_text
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._counter = 0

    def handle_error(self, request, client_address):
        pass  # clients that time out and hang up are expected here; the request log says what happened

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


class CannedResponder:
    """Answer every request of the package's LLM steps in the shape its parser expects, without a model: a PubMedVision
    JSON object (JSON mode), one BioMed-VITAL score per `Question N:` block, the qa50 judge's two scores, a win-rate
    verdict, and otherwise a `User:`/`Assistant:` transcript (self-instruct, BioMed-VITAL generation). Scores and
    verdicts vary with a hash of the request, so ratings differ and preference pairs can form. For walkthroughs and
    tests of the hand-offs between commands: the text means nothing."""

    def __call__(self, body: dict) -> str:
        texts = message_texts(body["messages"])
        last, seed = (texts[-1] if texts else ""), zlib.crc32(json.dumps(body["messages"]).encode())
        if (body.get("response_format") or {}).get("type") == "json_object":
            return json.dumps({"Image_description": "An axial image with a hypodense lesion.",
                               "QA-query": "What abnormality is visible?", "QA-answer": "A hypodense lesion."})
        if "[Assistant 1]" in last and "[Assistant 2]" in last:
            return f"8 {4 + seed % 5}\nThe second answer is less complete."
        if "[The Start of Assistant A's Answer]" in last:
            return f"Both answers are short. [[{'ABC'[seed % 3]}]]"
        questions = len(re.findall(r"^Question \d+:", last, flags=re.MULTILINE))
        if questions:
            return " ".join(str(2 + (seed >> (3 * i)) % 8) for i in range(questions)) + "\nScored by relevance."
        return ("User: What imaging modality is shown?\nAssistant: A cross-sectional image of the region.\n"
                "User: What is the main finding?\nAssistant: A well-defined lesion with a smooth margin.")


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
    parser.add_argument("--canned", action="store_true", help="instead of --text, answer each request of the "
                        "generate / rate / judge steps in the shape its parser expects (CannedResponder)")
    args = parser.parse_args(argv)
    server = OpenAIServer(CannedResponder() if args.canned else None, port=args.port, model_name=args.model_name,
                          default_text=args.text)
    print(f"OpenAI-compatible server listening on {server.url}; Ctrl-C to stop", flush=True)
    server.serve_until_interrupted()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
