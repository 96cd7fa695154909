"""Hermetic test environment: no real Hub, no GPU, caches in a temp dir.

Environment variables that huggingface_hub/datasets/transformers read at import time (`HF_ENDPOINT` into
`huggingface_hub.constants.ENDPOINT`, ...) are set when this file is imported. pytest imports it before the conftest
files below it and before any test module; `pytest_configure` would be too late, because pytest imports the conftest
files of the paths on its command line (tests/llm/conftest.py imports hf_medvlm, and so transformers) before it runs
that hook.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _hermetic_environment() -> None:
    hf_home = tempfile.mkdtemp(prefix="hf_medvlm_tests_hf_home_")
    # Any accidental Hub access goes to loopback, never to the internet; the Hub tests start a server on this port.
    # pytest-xdist workers inherit the controller's environment, so each takes a port of its own.
    if os.environ.get("PYTEST_XDIST_WORKER") or "HF_MEDVLM_TEST_HUB_PORT" not in os.environ:
        os.environ["HF_MEDVLM_TEST_HUB_PORT"] = str(_free_port())
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{os.environ['HF_MEDVLM_TEST_HUB_PORT']}"
    os.environ["HF_HOME"] = hf_home
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.pop("HF_TOKEN", None)
    os.environ["HF_TOKEN_PATH"] = str(Path(hf_home) / "token")
    # Subprocesses started by tests (CLI runs, remote-code checks) import this checkout.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    _hypothesis_profile()


def _hypothesis_profile() -> None:
    """Fuzz tests (hypothesis) take seconds: few examples, no deadline on a shared machine. Under CI the examples
    are derandomized (the same every run); elsewhere a failure prints the seed and the blob that reproduce it."""
    from hypothesis import HealthCheck, settings

    settings.register_profile("hf_medvlm", max_examples=40, deadline=None, database=None, print_blob=True,
                              derandomize=os.environ.get("CI", "").lower() in ("1", "true"),
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    # `HYPOTHESIS_PROFILE=hf_medvlm_long` searches harder (minutes), for a session spent hunting bugs.
    settings.register_profile("hf_medvlm_long", settings.get_profile("hf_medvlm"), max_examples=1000)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hf_medvlm"))


_hermetic_environment()


HUB_TEST_TOKEN = "hf_medvlm_dummy_test_token"


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """A loopback Hub (hf_medvlm.testing.hub_server) on the port that `HF_ENDPOINT` already points at.

    Tests that request it also get `HF_TOKEN` set to a dummy token (see `_hub_token`); all others run without one.
    """
    from huggingface_hub import constants

    from hf_medvlm.testing.hub_server import start_hub_server

    server = start_hub_server(tmp_path_factory.mktemp("hub_server"), port=int(os.environ["HF_MEDVLM_TEST_HUB_PORT"]))
    # huggingface_hub reads HF_ENDPOINT once, at import: if it was imported before _hermetic_environment ran, every Hub
    # test would talk to huggingface.co instead of this server.
    assert constants.ENDPOINT == server.url, f"huggingface_hub was imported before HF_ENDPOINT: {constants.ENDPOINT}"
    server.token = HUB_TEST_TOKEN
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _hub_token(request, monkeypatch):
    if "hub_server" in request.fixturenames:
        monkeypatch.setenv("HF_TOKEN", HUB_TEST_TOKEN)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_llava_med():
    """A tiny random LlavaMed model and processor (shared: tests must not modify them in place)."""
    from hf_medvlm.testing import build_tiny_llava_med

    return build_tiny_llava_med()


def make_rgb_image(width: int = 48, height: int = 40, seed: int = 0):
    """A deterministic random RGB PIL image."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 255, (height, width, 3), dtype=np.uint8))
