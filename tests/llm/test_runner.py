from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from hf_medvlm.llm import ChatBackendError, ChatRequest, OpenAIChatBackend, read_results, run_requests
from hf_medvlm.testing.openai_server import Reply, message_texts, start_openai_server


def _jobs(n: int, prefix: str = "job"):
    return [(f"{prefix}-{i}", ChatRequest(messages=[{"role": "user", "content": f"{prefix}-{i}"}])) for i in range(n)]


def _echo(body: dict) -> Reply:
    text = message_texts(body["messages"])[-1]
    return Reply(f"answer to {text}", prompt_tokens=10, completion_tokens=3)


def _sent_ids(server) -> list[str]:
    # A body cut short by a kill is recorded as text: that request never reached the model.
    return [message_texts(r.body["messages"])[-1] for r in server.chat_requests() if isinstance(r.body, dict)]


def test_run_writes_rows_report_and_costs(openai_server, tmp_path):
    openai_server.responder = _echo
    backend = OpenAIChatBackend(openai_server.url, model="m", prompt_price_per_million=2.0,
                                completion_price_per_million=10.0)
    report = run_requests(_jobs(12), backend, output_path=tmp_path / "out.jsonl", concurrency=4, progress=False)
    rows = read_results(tmp_path / "out.jsonl")
    assert sorted(rows) == sorted(f"job-{i}" for i in range(12))
    assert rows["job-3"]["text"] == "answer to job-3"
    assert (report.done, report.skipped, report.failed, report.total) == (12, 0, 0, 12)
    assert (report.prompt_tokens, report.completion_tokens) == (120, 36)
    assert report.estimated_cost_usd == pytest.approx((120 * 2.0 + 36 * 10.0) / 1e6)
    saved = json.loads((tmp_path / "out.report.json").read_text())
    assert saved["done"] == 12 and saved["completion_tokens"] == 36


def test_rerun_skips_answered_ids_and_sends_nothing(openai_server, tmp_path):
    openai_server.responder = _echo
    backend = OpenAIChatBackend(openai_server.url, model="m")
    run_requests(_jobs(5), backend, output_path=tmp_path / "out.jsonl", progress=False)
    report = run_requests(_jobs(8), backend, output_path=tmp_path / "out.jsonl", progress=False)
    assert (report.skipped, report.done) == (5, 3)
    assert Counter(_sent_ids(openai_server)) == Counter(f"job-{i}" for i in range(8))
    assert report.estimated_cost_usd is None  # no prices configured


def test_failures_are_counted_not_written_and_retried_on_rerun(openai_server, tmp_path):
    openai_server.enqueue(Reply(status=400, body=b'{"error": {"message": "bad request"}}'))
    backend = OpenAIChatBackend(openai_server.url, model="m")
    report = run_requests(_jobs(3), backend, output_path=tmp_path / "out.jsonl", concurrency=1, progress=False)
    assert (report.done, report.failed) == (2, 1)
    assert report.failures[0]["id"] == "job-0" and "HTTP 400" in report.failures[0]["error"]
    assert "job-0" not in read_results(tmp_path / "out.jsonl")
    again = run_requests(_jobs(3), backend, output_path=tmp_path / "out.jsonl", progress=False)
    assert (again.done, again.skipped, again.failed) == (1, 2, 0)


def test_cache_hits_are_counted_without_tokens(openai_server, tmp_path):
    openai_server.responder = _echo
    backend = OpenAIChatBackend(openai_server.url, model="m", cache_dir=tmp_path / "cache")
    run_requests(_jobs(4), backend, output_path=tmp_path / "a.jsonl", progress=False)
    report = run_requests(_jobs(4), backend, output_path=tmp_path / "b.jsonl", progress=False)
    assert (report.done, report.cached, report.prompt_tokens) == (4, 4, 0)
    assert len(openai_server.chat_requests()) == 4
    assert all(row["cached"] for row in read_results(tmp_path / "b.jsonl").values())


def test_changed_request_for_an_answered_id_is_an_error(openai_server, tmp_path):
    backend = OpenAIChatBackend(openai_server.url, model="m")
    run_requests(_jobs(2), backend, output_path=tmp_path / "out.jsonl", progress=False)
    changed = [("job-0", ChatRequest(messages=[{"role": "user", "content": "a different prompt"}]))]
    with pytest.raises(ValueError, match="out.jsonl: id 'job-0' was answered for a different request"):
        run_requests(changed, backend, output_path=tmp_path / "out.jsonl", progress=False)


def test_duplicate_ids_and_bad_concurrency_are_errors(openai_server, tmp_path):
    backend = OpenAIChatBackend(openai_server.url, model="m")
    with pytest.raises(ValueError, match="duplicate job id 'job-0'"):
        run_requests(_jobs(2) + _jobs(1), backend, output_path=tmp_path / "out.jsonl", progress=False)
    with pytest.raises(ValueError, match="concurrency"):
        run_requests(_jobs(1), backend, output_path=tmp_path / "o.jsonl", concurrency=0)


def test_torn_last_line_is_repaired_and_broken_middle_line_is_an_error(openai_server, tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "job-0", "text": "x"}\n{"id": "job-1", "te')
    backend = OpenAIChatBackend(openai_server.url, model="m")
    report = run_requests(_jobs(2), backend, output_path=path, progress=False)
    assert (report.skipped, report.done) == (1, 1)
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["job-0", "job-1"]
    path.write_text('{"id": "job-0"}\nnot json\n{"id": "job-1"}\n')
    with pytest.raises(ValueError, match="out.jsonl, line 2: not a result row"):
        read_results(path)


def test_generator_jobs_are_consumed_lazily(openai_server, tmp_path):
    backend = OpenAIChatBackend(openai_server.url, model="m")
    jobs = (job for job in _jobs(50))
    report = run_requests(jobs, backend, output_path=tmp_path / "out.jsonl", concurrency=3, progress=False)
    assert report.done == 50 and len(openai_server.chat_requests()) == 50


KILLED_RUN = textwrap.dedent("""
    import sys
    from hf_medvlm.llm import ChatRequest, OpenAIChatBackend, run_requests
    jobs = [(f"job-{i}", ChatRequest(messages=[{"role": "user", "content": f"job-{i}"}])) for i in range(40)]
    backend = OpenAIChatBackend(sys.argv[1], model="m", cache_dir=sys.argv[3])
    run_requests(jobs, backend, output_path=sys.argv[2], concurrency=4, progress=False)
""")


def test_killed_run_resumes_without_resending_answered_requests(openai_server, tmp_path):
    openai_server.responder = lambda body: Reply.slow(f"answer to {message_texts(body['messages'])[-1]}", 0.2)
    output, cache = tmp_path / "out.jsonl", tmp_path / "cache"
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, openai_server.url, str(output), str(cache)],
                               env=os.environ.copy())
    deadline = time.time() + 300  # importing hf_medvlm (transformers, torch) is slow on a busy machine
    while time.time() < deadline and process.poll() is None and (
            not output.exists() or len(output.read_text().splitlines()) < 12):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    answered_first = set(read_results(output))
    assert 12 <= len(answered_first) < 40, "the run must be killed part-way"
    sent_first = Counter(_sent_ids(openai_server))
    openai_server.clear()

    backend = OpenAIChatBackend(openai_server.url, model="m", cache_dir=cache)
    report = run_requests(_jobs(40), backend, output_path=output, concurrency=4, progress=False)
    sent_again = Counter(_sent_ids(openai_server))
    assert not answered_first & set(sent_again), "an answered request was sent again"
    assert max(sent_again.values()) == 1
    assert set(sent_first) | set(sent_again) == {f"job-{i}" for i in range(40)}
    # Only requests in flight at the kill (at most `concurrency`) can have been sent in both runs.
    assert len(set(sent_first) & set(sent_again)) <= 4
    assert report.skipped == len(answered_first) and report.done == 40 - len(answered_first)
    lines = output.read_text().splitlines()
    assert len(lines) == 40 and len({json.loads(line)["id"] for line in lines}) == 40


def test_a_dead_endpoint_stops_the_run_early(tmp_path):
    server = start_openai_server()
    server.stop()
    backend = OpenAIChatBackend(server.url, model="m", max_retries=0)
    with pytest.raises(ChatBackendError, match="stopping after 5 failed requests in a row"):
        run_requests(_jobs(200), backend, output_path=tmp_path / "out.jsonl", concurrency=1,
                     max_consecutive_failures=5, progress=False)
    saved = json.loads((tmp_path / "out.report.json").read_text())
    # The 5th failure stops it; jobs already queued (at most 2 x concurrency) may also have failed by then.
    assert 5 <= saved["failed"] <= 7 and saved["done"] == 0


def test_a_rejected_key_stops_the_run_at_the_first_reply(openai_server, tmp_path):
    openai_server.responder = lambda body: Reply.error(401, "Incorrect API key provided", "authentication_error")
    backend = OpenAIChatBackend(openai_server.url, model="m", api_key="wrong")
    with pytest.raises(ChatBackendError, match=r"/v1/chat/completions answered HTTP 401 \(Incorrect API key provided\)"):
        run_requests(_jobs(200), backend, output_path=tmp_path / "out.jsonl", concurrency=4, progress=False)
    # Never retried, and the run ends long before `max_consecutive_failures` (20): at most the jobs queued when the
    # first reply came back (2 x concurrency) were sent.
    assert [r.headers["x-stainless-retry-count"] for r in openai_server.chat_requests()] == ["0"] * len(
        openai_server.chat_requests())
    assert len(openai_server.chat_requests()) <= 8
    saved = json.loads((tmp_path / "out.report.json").read_text())
    assert saved["done"] == 0 and 1 <= saved["failed"] <= 8 and "HTTP 401" in saved["failures"][0]["error"]
