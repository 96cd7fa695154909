"""`OpenAIChatBackend` (the `openai` client) against the loopback server: one test per class of failure.

Retries are observed on the server side: how many requests arrived, the client's `x-stainless-retry-count` header on
each, and the arrival times (only as lower bounds: a slow machine can make gaps longer, never shorter).
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from hf_medvlm.llm import ChatBackendError, ChatRequest, OpenAIChatBackend, image_to_data_url
from hf_medvlm.testing.openai_server import Reply, start_openai_server
from tests.conftest import make_rgb_image


def _request(text="What is shown?", **kwargs) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kwargs)


def _backend(server, **kwargs) -> OpenAIChatBackend:
    kwargs.setdefault("api_key", "sk-test")
    return OpenAIChatBackend(server.url, model=kwargs.pop("model", "judge-model"), **kwargs)


def _retry_counts(server) -> list[str]:
    return [r.headers.get("x-stainless-retry-count") for r in server.chat_requests()]


def _gaps(server) -> list[float]:
    times = [r.time for r in server.chat_requests()]
    return [later - earlier for earlier, later in zip(times, times[1:])]


def test_completion_text_usage_and_openai_headers(openai_server):
    openai_server.enqueue(Reply("A chest X-ray.", prompt_tokens=11, completion_tokens=4))
    response = _backend(openai_server).complete(_request(max_tokens=20, seed=3))
    assert (response.text, response.prompt_tokens, response.completion_tokens) == ("A chest X-ray.", 11, 4)
    assert response.cached is False and response.model == "judge-model" and response.finish_reason == "stop"
    (sent,) = openai_server.chat_requests()
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body["model"] == "judge-model"
    assert (sent.body["max_tokens"], sent.body["seed"], sent.body["temperature"]) == (20, 3, 0.0)
    assert "response_format" not in sent.body


def test_extra_body_fields_are_sent(openai_server):
    _backend(openai_server, extra_body={"top_k": 1}).complete(_request())
    assert openai_server.chat_requests()[0].body["top_k"] == 1


def test_azure_style_uses_deployment_path_api_version_and_api_key_header(openai_server):
    backend = OpenAIChatBackend(openai_server.root_url, model="gpt4-deploy", api_key="az-key", api_style="azure",
                                api_version="2024-06-01")
    assert backend.complete(_request()).text == "OK"
    (sent,) = openai_server.chat_requests()
    assert sent.path == "/openai/deployments/gpt4-deploy/chat/completions"
    assert sent.query == {"api-version": "2024-06-01"}
    assert sent.headers["api-key"] == "az-key" and "authorization" not in sent.headers


def test_endpoint_model_and_key_come_from_the_environment(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("HF_MEDVLM_LLM_MODEL", "env-model")
    OpenAIChatBackend().complete(_request())
    monkeypatch.delenv("OPENAI_API_KEY")
    OpenAIChatBackend().complete(_request())  # a server without keys (vLLM's default) needs none
    first, second = openai_server.chat_requests()
    assert first.headers["authorization"] == "Bearer env-key" and first.body["model"] == "env-model"
    assert second.headers["authorization"] == "Bearer EMPTY"


def test_configuration_errors_are_value_errors_before_any_request(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_VERSION", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        OpenAIChatBackend(model="m")
    with pytest.raises(ValueError, match="HF_MEDVLM_LLM_MODEL"):
        OpenAIChatBackend("http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="api_version"):
        OpenAIChatBackend("https://x.openai.azure.com", model="m", api_key="k", api_style="azure")
    with pytest.raises(ValueError, match="x.openai.azure.com.*AZURE_OPENAI_API_KEY"):
        OpenAIChatBackend("https://x.openai.azure.com", model="m", api_style="azure", api_version="2024-06-01")
    with pytest.raises(ValueError, match="api_style"):
        OpenAIChatBackend("http://127.0.0.1:9/v1", model="m", api_style="bedrock")


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
    openai_server.enqueue(Reply.error(400, "response_format is not supported"), Reply('{"a": 1}'))
    other = _backend(openai_server)
    assert other.complete(_request(json_mode=True)).text == '{"a": 1}'
    first, second = openai_server.chat_requests()
    assert "response_format" in first.body and "response_format" not in second.body
    assert other.json_mode_supported is False


def test_429_is_retried_after_the_servers_retry_after(openai_server):
    openai_server.enqueue(Reply.rate_limited(retry_after=0.4), Reply.rate_limited(retry_after=0.2), Reply("done"))
    assert _backend(openai_server).complete(_request()).text == "done"
    assert _retry_counts(openai_server) == ["0", "1", "2"]
    first_wait, second_wait = _gaps(openai_server)
    assert first_wait >= 0.4 and second_wait >= 0.2


def test_5xx_is_retried_with_bounded_backoff_then_reported(openai_server):
    openai_server.enqueue(Reply.server_error(500), Reply.server_error(502), Reply("finally"))
    assert _backend(openai_server).complete(_request()).text == "finally"
    assert _retry_counts(openai_server) == ["0", "1", "2"]
    assert min(_gaps(openai_server)) >= 0.3  # backs off (no Retry-After here) rather than hammering the server
    openai_server.clear()
    openai_server.enqueue(*[Reply.server_error(503, "overloaded", retry_after=0.01)] * 3)
    with pytest.raises(ChatBackendError, match=r"/v1/chat/completions failed after 3 attempts.*HTTP 503: overloaded"):
        _backend(openai_server, max_retries=2).complete(_request())
    assert len(openai_server.chat_requests()) == 3


@pytest.mark.parametrize("status", [401, 403, 404])
def test_errors_no_retry_can_fix_are_sent_once_and_fatal(openai_server, status):
    openai_server.enqueue(Reply.error(status, "no such thing"))
    with pytest.raises(ChatBackendError) as err:
        _backend(openai_server).complete(_request())
    message = str(err.value)
    assert message.startswith(f"{openai_server.url}/chat/completions answered HTTP {status} (no such thing)")
    assert message.count(". ") == 0 and message.endswith("so the run stops.")  # one sentence
    assert err.value.fatal and err.value.status == status
    assert len(openai_server.chat_requests()) == 1


def test_a_bad_request_fails_that_request_only(openai_server):
    openai_server.enqueue(Reply.error(400, "content filter"))
    with pytest.raises(ChatBackendError, match="failed after 1 attempt; last error: HTTP 400: content filter") as err:
        _backend(openai_server).complete(_request())
    assert not err.value.fatal and len(openai_server.chat_requests()) == 1


def test_malformed_bodies_are_retried_and_exhaustion_is_an_error(openai_server):
    openai_server.enqueue(Reply.malformed(), Reply.malformed(b"<html>bad gateway</html>"), Reply("parsed"))
    assert _backend(openai_server).complete(_request()).text == "parsed"
    assert len(openai_server.chat_requests()) == 3
    openai_server.enqueue(*[Reply.malformed(b'{"choices": []}')] * 3)
    with pytest.raises(ChatBackendError, match="failed after 3 attempts.*malformed"):
        _backend(openai_server, max_retries=2).complete(_request())
    assert len(openai_server.chat_requests()) == 6


def test_timeout_is_retried(openai_server):
    openai_server.enqueue(Reply.slow("too late", delay=2.0), Reply("in time"))
    assert _backend(openai_server, timeout=0.3).complete(_request()).text == "in time"
    assert _retry_counts(openai_server) == ["0", "1"]
    openai_server.enqueue(*[Reply.slow("too late", delay=2.0)] * 2)
    with pytest.raises(ChatBackendError, match="failed after 2 attempts; last error: APITimeoutError"):
        _backend(openai_server, timeout=0.3, max_retries=1).complete(_request())


def test_connection_errors_are_retried_then_reported():
    server = start_openai_server()
    url = server.url
    server.stop()
    with pytest.raises(ChatBackendError, match="failed after 3 attempts; last error: APIConnectionError") as err:
        OpenAIChatBackend(url, model="m", max_retries=2).complete(_request())
    assert not err.value.fatal


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


def test_failed_replies_are_not_cached(openai_server, tmp_path):
    openai_server.enqueue(Reply.error(400, "bad"))
    backend = _backend(openai_server, cache_dir=tmp_path)
    with pytest.raises(ChatBackendError):
        backend.complete(_request())
    assert backend.complete(_request()).text == "OK" and len(backend.cache) == 1


def test_endpoint_arguments_parse_and_build_a_backend(openai_server, monkeypatch, tmp_path):
    from transformers import HfArgumentParser

    from hf_medvlm.llm import ChatEndpointArguments

    monkeypatch.setenv("MY_JUDGE_KEY", "secret")
    (args,) = HfArgumentParser(ChatEndpointArguments).parse_args_into_dataclasses(
        ["--llm_base_url", openai_server.url, "--llm_model", "judge", "--llm_api_key_env", "MY_JUDGE_KEY",
         "--llm-cache-dir", str(tmp_path), "--llm_prompt_price_per_million", "1.5", "--llm_max_retries", "1"])
    backend = args.build_backend()
    openai_server.enqueue(*[Reply.server_error(500, retry_after=0.01)] * 2)
    with pytest.raises(ChatBackendError, match="after 2 attempts"):
        backend.complete(_request())
    assert openai_server.chat_requests()[0].headers["authorization"] == "Bearer secret"
    assert backend.cache is not None and backend.estimate_cost(1_000_000, 0) == 1.5
