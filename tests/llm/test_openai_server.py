from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from hf_medvlm.llm import ChatRequest, OpenAIChatBackend, image_to_data_url
from hf_medvlm.testing.openai_server import TransformersResponder, main, start_openai_server
from tests.conftest import make_rgb_image


def test_server_answers_as_soon_as_started_binds_loopback_only_and_stops():
    server = start_openai_server()
    assert server.server_address[0] == "127.0.0.1"
    # no polling: the first request right after start() is answered
    assert requests.get(f"{server.url}/models", timeout=5).json()["data"][0]["id"] == "loopback-model"
    server.stop()
    assert not server._thread.is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/models", timeout=5)


def test_help_has_defaults_and_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "(default: 8000)" in out and "example:\n  python -m hf_medvlm.testing.openai_server --port" in out


@pytest.mark.integration
def test_python_m_entry_serves_until_interrupted():
    process = subprocess.Popen([sys.executable, "-m", "hf_medvlm.testing.openai_server", "--port", "0", "--text",
                                "Yes."], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        line = process.stdout.readline()
        url = line.split("listening on ")[1].split(";")[0]
        reply = OpenAIChatBackend(url, model="m").complete(ChatRequest(messages=[{"role": "user", "content": "Hi"}]))
        assert reply.text == "Yes."
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0


def test_bad_routes_and_bodies_are_refused_and_recorded(openai_server):
    assert requests.post(f"{openai_server.url}/completions", json={}, timeout=5).status_code == 404
    reply = requests.post(f"{openai_server.url}/chat/completions", data=b"not json", timeout=5)
    assert reply.status_code == 400 and "messages" in reply.json()["error"]["message"]
    assert [r.reply_status for r in openai_server.requests] == [404, 400]


def test_usage_is_reported_and_model_echoed(openai_server):
    openai_server.default_text = "two words"
    body = {"model": "x", "messages": [{"role": "user", "content": "one two three"}]}
    data = requests.post(f"{openai_server.url}/chat/completions", json=body, timeout=5).json()
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert data["model"] == "x" and data["choices"][0]["message"]["content"] == "two words"


def test_tiny_transformers_model_serves_real_generations_with_images(tiny_llava_med):
    model, processor = tiny_llava_med
    with start_openai_server(TransformersResponder(model, processor, max_new_tokens=4)) as server:
        backend = OpenAIChatBackend(server.url, model="tiny")
        request = ChatRequest(messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_to_data_url(make_rgb_image())}},
            {"type": "text", "text": "What modality is this?"}]}], max_tokens=3)
        first, second = backend.complete(request), backend.complete(request)
    assert first.text == second.text  # greedy: deterministic
    assert 1 <= first.completion_tokens <= 3 and first.prompt_tokens > 16  # 16 image positions + text
