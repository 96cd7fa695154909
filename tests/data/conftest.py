"""Fixtures for the data tests: the demo set is built once per session (about a second)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_facts():
    pytest.importorskip("pydicom")
    pytest.importorskip("skimage")
    from hf_medvlm.data.demo import load_demo_facts

    return load_demo_facts()


@pytest.fixture(scope="session")
def demo_records(demo_facts):
    from hf_medvlm.data.demo import build_demo_records

    return build_demo_records(facts=demo_facts)


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory):
    pytest.importorskip("pydicom")
    from hf_medvlm.data.demo import write_demo_dataset

    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "demo_set")


def write_jpeg(path, seed: int = 0, size=(24, 20)):
    """A small real JPEG file (random pixels) at `path`."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    Image.fromarray(rng.randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="JPEG")
    return path


def write_truncated_jpeg(path):
    write_jpeg(path, seed=99, size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


class _PMCServer:
    """A loopback HTTP server serving tarballs with scripted behaviour; counts requests per path.

    routes: path -> ("ok", body) | ("404",) | ("truncated", body) | ("slow", body, seconds)
      | ("status", code, headers)  an empty answer with that status, e.g. (429, {"Retry-After": "7"})
      | ("stall", body, seconds)   headers and half the body, then silence for `seconds`
      | [route, route, ...]        answered in turn, the last one from then on
    """

    def __init__(self):
        import http.server
        import threading
        import time
        from collections import Counter

        self.routes: dict = {}
        self.requests: Counter = Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests[self.path] += 1
                route = server.routes.get(self.path, ("404",))
                if isinstance(route, list):
                    route = route.pop(0) if len(route) > 1 else route[0]
                if route[0] in ("404", "status"):
                    self.send_response(404 if route[0] == "404" else route[1])
                    for name, value in (route[2] if route[0] == "status" else {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = route[1]
                if route[0] == "slow":
                    time.sleep(route[2])
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body if route[0] not in ("truncated", "stall") else body[: len(body) // 2])
                    if route[0] == "stall":
                        self.wfile.flush()
                        time.sleep(route[2])
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if route[0] == "truncated":
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def pmc_server():
    server = _PMCServer()
    yield server
    server.stop()


def make_tarball(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """A .tar.gz holding `members` (name -> bytes) and `symlinks` (name -> link target), as PMC OA packages are.

    Names are stored as given, so a test can plant absolute or `..` names as a hostile archive would.
    """
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def jpeg_bytes(seed: int = 0) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.RandomState(seed).randint(0, 255, (16, 16, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()
