from __future__ import annotations

import base64
import io
import time

import pytest
from PIL import Image

from hf_medvlm.llm import ChatBackendError, ChatRequest, OpenAIChatBackend, image_to_data_url
from hf_medvlm.llm.openai_backend import parse_retry_after
from hf_medvlm.testing.openai_server import Reply, start_openai_server
from tests.conftest import make_rgb_image


def _request(text="What is shown?", **kwargs) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kwargs)


def _backend(server, **kwargs) -> OpenAIChatBackend:
    kwargs.setdefault("api_key", "sk-test")
    return OpenAIChatBackend(server.url, model=kwargs.pop("model", "judge-model"), **kwargs)


def test_completion_text_usage_and_openai_headers(openai_server):
    openai_server.enqueue(Reply("A chest X-ray.", prompt_tokens=11, completion_tokens=4))
    response = _backend(openai_server).complete(_request(max_tokens=20, seed=3))
    assert (response.text, response.prompt_tokens, response.completion_tokens) == ("A chest X-ray.", 11, 4)
    assert response.cached is False and response.model == "judge-model"
    (sent,) = openai_server.chat_requests()
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body["model"] == "judge-model"
    assert (sent.body["max_tokens"], sent.body["seed"], sent.body["temperature"]) == (20, 3, 0.0)
    assert "response_format" not in sent.body


def test_azure_style_uses_deployment_path_api_version_and_api_key_header(openai_server):
    backend = OpenAIChatBackend(openai_server.root_url, model="gpt4-deploy", api_key="az-key", api_style="azure",
                                api_version="2024-06-01")
    assert backend.complete(_request()).text == "OK"
    (sent,) = openai_server.chat_requests()
    assert sent.path == "/openai/deployments/gpt4-deploy/chat/completions"
    assert sent.query == {"api-version": "2024-06-01"}
    assert sent.headers["api-key"] == "az-key" and "authorization" not in sent.headers
    assert "model" not in sent.body


def test_endpoint_model_and_key_come_from_the_environment(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("HF_MEDVLM_LLM_MODEL", "env-model")
    OpenAIChatBackend().complete(_request())
    (sent,) = openai_server.chat_requests()
    assert sent.headers["authorization"] == "Bearer env-key" and sent.body["model"] == "env-model"


def test_missing_endpoint_or_azure_version_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        OpenAIChatBackend(model="m")
    monkeypatch.delenv("OPENAI_API_VERSION", raising=False)
    with pytest.raises(ValueError, match="api_version"):
        OpenAIChatBackend("https://x.openai.azure.com", model="m", api_style="azure")


def test_images_are_sent_as_base64_data_urls(openai_server):
    image = make_rgb_image(20, 12, seed=1)
    url = image_to_data_url(image)
    request = ChatRequest(messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe."}, {"type": "image_url", "image_url": {"url": url}}]}])
    _backend(openai_server).complete(request)
    part = openai_server.chat_requests()[0].body["messages"][0]["content"][1]
    header, encoded = part["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64"
    decoded = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert decoded.size == (20, 12) and list(decoded.getdata()) == list(image.getdata())  # PNG: lossless


def test_image_to_data_url_jpeg_and_paths(tmp_path):
    image = make_rgb_image().convert("RGBA")
    assert image_to_data_url(image, image_format="jpeg").startswith("data:image/jpeg;base64,")
    path = tmp_path / "x.png"
    make_rgb_image().save(path)
    assert image_to_data_url(path) == image_to_data_url(make_rgb_image())
    with pytest.raises(FileNotFoundError, match="missing.png"):
        image_to_data_url(tmp_path / "missing.png")


def test_json_mode_sends_response_format_and_falls_back_when_rejected(openai_server):
    backend = _backend(openai_server)
    backend.complete(_request(json_mode=True))
    assert openai_server.chat_requests()[0].body["response_format"] == {"type": "json_object"}
    openai_server.clear()
    openai_server.enqueue(Reply(status=400, body=b'{"error": {"message": "response_format is not supported"}}'),
                          Reply('{"a": 1}'))
    other = _backend(openai_server)
    assert other.complete(_request(json_mode=True)).text == '{"a": 1}'
    first, second = openai_server.chat_requests()
    assert "response_format" in first.body and "response_format" not in second.body
    assert other.json_mode_supported is False


def test_429_honours_retry_after_then_succeeds(openai_server, no_sleep):
    openai_server.enqueue(Reply.rate_limited(retry_after=7), Reply.rate_limited(retry_after=2), Reply("done"))
    backend = no_sleep(_backend(openai_server))
    assert backend.complete(_request()).text == "done"
    assert len(openai_server.chat_requests()) == 3
    assert 7 <= no_sleep.delays[0] <= 7.7 and 2 <= no_sleep.delays[1] <= 2.2
    assert backend.stats["retries"] == 2 and backend.stats["http_429"] == 2


def test_5xx_backoff_is_exponential_with_jitter(openai_server, no_sleep):
    openai_server.enqueue(*[Reply.server_error(status) for status in (500, 502, 503, 500)], Reply("finally"))
    backend = no_sleep(_backend(openai_server, backoff_base=1.0, backoff_max=5.0))
    assert backend.complete(_request()).text == "finally"
    ceilings = [1.0, 2.0, 4.0, 5.0]  # base * 2**n, capped at backoff_max
    assert len(no_sleep.delays) == 4
    for delay, ceiling in zip(no_sleep.delays, ceilings):
        assert ceiling / 2 <= delay <= ceiling


def test_real_retry_after_wait_is_slept(openai_server):
    openai_server.enqueue(Reply.rate_limited(retry_after=0.3), Reply("ok"))
    start = time.perf_counter()
    assert _backend(openai_server).complete(_request()).text == "ok"
    assert time.perf_counter() - start >= 0.3


def test_malformed_bodies_are_retried_and_exhaustion_is_an_error(openai_server, no_sleep):
    openai_server.enqueue(Reply.malformed(), Reply.malformed(b"<html>bad gateway</html>"), Reply("parsed"))
    backend = no_sleep(_backend(openai_server))
    assert backend.complete(_request()).text == "parsed"
    assert backend.stats["malformed"] == 2
    openai_server.enqueue(*[Reply.malformed(b'{"choices": []}')] * 3)
    with pytest.raises(ChatBackendError, match="after 3 attempts.*malformed"):
        no_sleep(_backend(openai_server, max_retries=2)).complete(_request())


def test_client_errors_are_not_retried(openai_server, no_sleep):
    openai_server.enqueue(Reply(status=401, body=b'{"error": {"message": "bad key"}}'))
    backend = no_sleep(_backend(openai_server))
    with pytest.raises(ChatBackendError, match="HTTP 401.*bad key") as err:
        backend.complete(_request())
    assert err.value.status == 401 and len(openai_server.chat_requests()) == 1 and not no_sleep.delays


def test_timeout_is_retried(openai_server, no_sleep):
    openai_server.enqueue(Reply.slow("too late", delay=1.0), Reply("in time"))
    backend = no_sleep(_backend(openai_server, timeout=0.2))
    start = time.perf_counter()
    assert backend.complete(_request()).text == "in time"
    assert time.perf_counter() - start < 0.9
    assert len(openai_server.chat_requests()) == 2 and len(no_sleep.delays) == 1


def test_connection_errors_are_retried_then_reported(no_sleep):
    server = start_openai_server()
    url = server.url
    server.stop()
    backend = no_sleep(OpenAIChatBackend(url, model="m", max_retries=3))
    with pytest.raises(ChatBackendError, match="after 4 attempts.*connection error"):
        backend.complete(_request())
    assert len(no_sleep.delays) == 3


def test_cache_makes_reruns_free(openai_server, tmp_path):
    backend = _backend(openai_server, cache_dir=tmp_path / "cache")
    first = backend.complete(_request("q1"))
    again = _backend(openai_server, cache_dir=tmp_path / "cache").complete(_request("q1"))
    assert len(openai_server.chat_requests()) == 1
    assert again.cached and not first.cached and again.text == first.text
    assert again.prompt_tokens == first.prompt_tokens
    backend.complete(_request("q2"))
    backend.complete(_request("q1", temperature=0.7))
    _backend(openai_server, cache_dir=tmp_path / "cache", model="other-model").complete(_request("q1"))
    assert len(openai_server.chat_requests()) == 4  # other text, settings or model: a new request each


def test_failed_replies_are_not_cached(openai_server, tmp_path, no_sleep):
    openai_server.enqueue(Reply(status=400, body=b"{}"))
    backend = no_sleep(_backend(openai_server, cache_dir=tmp_path))
    with pytest.raises(ChatBackendError):
        backend.complete(_request())
    assert backend.complete(_request()).text == "OK" and len(backend.cache) == 1


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert parse_retry_after({}) is None and parse_retry_after({"retry-after": "soon"}) is None
