"""Fixtures for the LLM client tests: a fresh loopback OpenAI-compatible server per test."""

from __future__ import annotations

import pytest

from hf_medvlm.testing.openai_server import start_openai_server


@pytest.fixture
def openai_server():
    server = start_openai_server()
    yield server
    server.stop()
