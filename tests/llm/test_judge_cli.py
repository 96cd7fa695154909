"""The qa50 chat eval end to end through `hf-medvlm eval` against the loopback judge: failure modes on the wire, the
original qa50 record shapes (domain flag dicts, mention dicts), per-domain results, and a rerun that costs nothing."""

from __future__ import annotations

import json
import re

import pytest

from hf_medvlm.cli import main as cli_main
from hf_medvlm.testing.openai_server import Reply
from tests.conftest import make_rgb_image

pytestmark = pytest.mark.integration

DOMAINS = ("chest_xray", "mri", "histology", "gross", "ct_scan")


def _qa50_parquet(path, n: int = 10):
    import datasets

    rows = [dict(question_id=f"{i}", image=make_rgb_image(seed=i), pair_id=f"p{i}", fig_label=f"Fig. {i}",
                 fig_caption=f"Caption {i}.", in_text_mention=[{"tokens": ["see", f"fig{i}"]}],
                 text=f"What does image {i} show?\n<image>", gpt4_answer=f"reference {i}",
                 domain={d: d == DOMAINS[i % 5] for d in DOMAINS},
                 type="detailed_description" if i % 2 else "conversation")
            for i in range(n)]
    datasets.Dataset.from_list(rows).to_parquet(str(path))


def _judge(body) -> Reply:
    i = int(re.search(r"\[Assistant 2\]\nanswer (\d+)", body["messages"][1]["content"]).group(1))
    if i == 4:
        return Reply("The second assistant is vague.")  # no scores: counted, not dropped
    return Reply(f"8 {4 + i % 5}\nexplanation")


def test_qa50_chat_eval_through_the_cli(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "judge-key")
    _qa50_parquet(tmp_path / "qa50.parquet")
    (tmp_path / "answers.jsonl").write_text(
        "".join(json.dumps({"question_id": f"{i}", "text": f"answer {i}"}) + "\n" for i in range(10)))
    openai_server.responder = _judge
    openai_server.enqueue(Reply.rate_limited(retry_after=0), Reply.server_error(502), Reply.malformed())
    argv = ["eval", "--task", "chat", "--dataset_name", str(tmp_path / "qa50.parquet"),
            "--answers_file", str(tmp_path / "answers.jsonl"), "--output_dir", str(tmp_path / "out"),
            "--llm_base_url", openai_server.url, "--llm_model", "judge", "--llm_concurrency", "2",
            "--llm_cache_dir", str(tmp_path / "cache"), "--benchmark_name", "qa50"]
    assert cli_main(argv) == 0
    assert len(openai_server.chat_requests()) == 13  # 10 questions + 3 retried failures
    assert all(r.headers["authorization"] == "Bearer judge-key" for r in openai_server.chat_requests())
    qa50 = json.loads((tmp_path / "out" / "results.json").read_text())["scores"]["llava_med_qa50"]
    scored = [i for i in range(10) if i != 4]
    expected = 100 * sum((4 + i % 5) / 8 for i in scored) / len(scored)
    assert qa50["overall"]["relative_score"] == pytest.approx(expected, abs=1e-3)
    assert qa50["unparseable"] == {"count": 1, "by_reason": {"no_scores": 1}, "ids": ["4"]}
    assert qa50["by_domain"]["ct_scan"] == {**qa50["by_domain"]["ct_scan"], "n": 1, "unparseable": 1}
    assert qa50["by_domain"]["chest_xray"]["relative_score"] == pytest.approx(100 * 4 / 8)  # ids 0 and 5
    assert set(qa50["by_type"]) == {"conversation", "detailed_description"}
    content = openai_server.chat_requests()[-1].body["messages"][1]["content"]
    assert content.startswith("[Context]\nFigure Caption:\nFig. ") and "\t- [{'tokens': ['see', 'fig" in content

    assert cli_main(argv) == 0  # a rerun reuses every judge reply: no request sent
    assert len(openai_server.chat_requests()) == 13
