"""The loopback server's `--canned` responder answers each LLM step of the package in the shape its parser expects
(the walkthroughs' LLM, docs/walkthroughs.md)."""

from __future__ import annotations

import socket
import subprocess
import sys

from hf_medvlm.testing.openai_server import CannedResponder


def _body(messages, **extra):
    return {"messages": messages, **extra}


def test_every_step_gets_a_reply_its_parser_accepts():
    from hf_medvlm.eval.judge import build_chat_judge_messages, build_win_rate_messages, parse_score_pair, parse_verdict
    from hf_medvlm.generation.parsing import parse_reformat_json, parse_score_line, parse_user_assistant_turns

    reply = CannedResponder()
    reformat = reply(_body([{"role": "user", "content": "reformat"}], response_format={"type": "json_object"}))
    assert parse_reformat_json(reformat).ok
    transcript = reply(_body([{"role": "system", "content": "write a dialogue"}, {"role": "user", "content": "x"}]))
    assert len(parse_user_assistant_turns(transcript).pairs) == 2
    rating = reply(_body([{"role": "user", "content": "Question 1: a\nAnswer 1: b\n\nQuestion 2: c\nAnswer 2: d"}]))
    assert parse_score_line(rating, 2).scores is not None
    question = {"question_id": "1", "text": "What?", "gpt4_answer": "Ref.", "fig_caption": "Cap", "fig_label": "F1"}
    assert parse_score_pair(reply(_body(build_chat_judge_messages(question, "Mine."))))[0] is not None
    assert parse_verdict(reply(_body(build_win_rate_messages("What?", "Ref.", "A.", "B.")))) in ("A", "B", "C")
    ratings = {reply(_body([{"role": "user", "content": f"Question 1: q{i}\nAnswer 1: a"}])) for i in range(20)}
    assert len(ratings) > 2  # ratings vary, so that preference pairs can form


def test_canned_from_the_command_line(tmp_path):
    from hf_medvlm.llm import ChatRequest, OpenAIChatBackend

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "hf_medvlm.testing.openai_server", "--port", str(port),
                               "--canned"], stdout=subprocess.PIPE, text=True)
    try:
        assert "listening" in server.stdout.readline()
        backend = OpenAIChatBackend(f"http://127.0.0.1:{port}/v1", model="m", max_retries=0, timeout=10)
        text = backend.complete(ChatRequest(messages=[{"role": "user", "content": "Question 1: q\nAnswer 1: a"}])).text
        assert text.split("\n")[0].isdigit()
    finally:
        server.terminate()
        server.wait(timeout=10)
