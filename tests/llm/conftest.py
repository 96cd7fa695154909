"""Fixtures for the LLM client tests: a fresh loopback OpenAI-compatible server per test."""

from __future__ import annotations

import pytest


@pytest.fixture
def openai_server():
    # Imported here, not at the top: with `pytest tests/llm/...` as an argument this conftest is loaded before
    # tests/conftest.py's pytest_configure makes the environment hermetic, and huggingface_hub reads HF_ENDPOINT once.
    from hf_medvlm.testing.openai_server import start_openai_server

    server = start_openai_server()
    yield server
    server.stop()
