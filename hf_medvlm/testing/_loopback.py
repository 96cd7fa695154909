"""What the loopback test servers (`hub_server`, `openai_server`) share: a quiet keep-alive JSON handler and a
threaded HTTP server bound to 127.0.0.1 that serves from a daemon thread (stdlib only)."""

from __future__ import annotations

import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse pooled connections
    disable_nagle_algorithm = True  # headers and body go out as separate writes; don't let Nagle delay the body

    def log_message(self, format, *args):  # noqa: A002 - keep test output clean
        pass

    def send_json(self, payload, status: int = 200, headers: dict | None = None) -> None:
        """`payload` as JSON, or bytes as they are (malformed-body tests); `headers` may override the content type.
        A HEAD request gets the headers only."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_headers(status, {"Content-Type": "application/json", "Content-Length": str(len(body)),
                                **(headers or {})})
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_headers(self, status: int, headers: dict) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()


class LoopbackServer(ThreadingHTTPServer):
    """A server on 127.0.0.1:`port` (0: any free port): `.start()` serves from a daemon thread, `.stop()` or `with`
    ends it; `.serve_until_interrupted()` serves on the calling thread instead (the `python -m` entry points)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0):
        super().__init__(("127.0.0.1", int(port)), handler)
        self.port = self.server_address[1]
        self.root_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=f"{type(self).__name__}-{self.port}")

    def start(self):
        """Serve from the daemon thread; the socket already listens, so clients can connect at once."""
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_until_interrupted(self) -> None:
        # A shell starts background jobs (`... &` in a script) with SIGINT ignored; `kill -INT` must still stop us.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.server_close()
