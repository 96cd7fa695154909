from __future__ import annotations

import json
import re

import pytest

from hf_medvlm.eval.judge import (
    build_chat_judge_messages,
    build_win_rate_messages,
    combine_orders,
    parse_score_pair,
    parse_verdict,
    qa50_domain,
    score_chat,
    win_rate,
)
from hf_medvlm.llm import OpenAIChatBackend
from hf_medvlm.testing.openai_server import Reply
from tests.conftest import make_rgb_image

DOMAINS = ("chest_xray", "mri", "histology", "gross", "ct_scan")


def _qa50_question(i: int, domain: str, kind: str) -> dict:
    flags = {name: name == domain for name in DOMAINS}
    return {
        "question_id": i, "image": f"img_{i}.jpg", "pair_id": f"pair_{i}", "fig_label": f"Figure {i}",
        "fig_caption": f"Caption of figure {i}.", "in_text_mention": [{"tokens": ["as", "seen", f"fig{i}"]}],
        "text": f"What is in image {i}?\n<image>", "gpt4_answer": f"reference answer {i}",
        "domain": flags, "type": kind,
    }


QUESTIONS = [_qa50_question(i, DOMAINS[i % 5], "conversation" if i % 3 else "detailed_description")
             for i in range(10)]
# The scripted judge gives the reference 8 and the model (i % 4) + 4, so every ratio is known in advance.
ANSWERS = [{"question_id": q["question_id"], "text": f"model answer {q['question_id']}"} for q in QUESTIONS]


def _chat_judge(body: dict) -> Reply:
    content = body["messages"][1]["content"]
    i = int(re.search(r"\[Assistant 2\]\nmodel answer (\d+)", content).group(1))
    return Reply(f"8 {i % 4 + 4}\nAssistant 1 is more detailed.")


def _expected(ids) -> float:
    return 100 * sum((i % 4 + 4) / 8 for i in ids) / len(ids)


def test_chat_judge_message_follows_the_original_layout():
    system, user = build_chat_judge_messages(QUESTIONS[1], "my answer")
    assert system == {"role": "system",
                      "content": "'You are a helpful and precise assistant for checking the quality of the answer."}
    content = user["content"]
    assert content.startswith(
        "[Context]\nFigure Caption:\nFigure 1: Caption of figure 1.\n\nFigure Context:\n"
        "\t- [{'tokens': ['as', 'seen', 'fig1']}]\n\n[Question]\nWhat is in image 1?\n<image>\n\n"
        "[Assistant 1]\nreference answer 1\n\n[End of Assistant 1]\n\n"
        "[Assistant 2]\nmy answer\n\n[End of Assistant 2]\n\n[System]\n"
    )
    assert "first line" in content and content.endswith("\n\n")
    clean = build_chat_judge_messages(QUESTIONS[1], "x", mentions_style="clean", strip_image_token=True)[1]
    assert "\t- as seen fig1\n" in clean["content"] and "<image>" not in clean["content"]


@pytest.mark.parametrize("text, expected", [
    ("8 6\nexplanation", ((8.0, 6.0), None)),
    ("  7.5 9 \n", ((7.5, 9.0), None)),
    ("8,6", ((8.0, 6.0), None)),
    ("Assistant 1: 8\nAssistant 2: 6", (None, "no_scores")),
    ("8\n6", (None, "no_scores")),
    ("8 6 7", (None, "no_scores")),
    ("", (None, "no_scores")),
    ("0 6", (None, "out_of_range")),
    ("8 11", (None, "out_of_range")),
])
def test_parse_score_pair_is_strict(text, expected):
    assert parse_score_pair(text) == expected


def test_domain_is_the_first_true_flag_in_the_original_order():
    assert qa50_domain({"domain": {"ct_scan": True, "mri": True}}) == "mri"
    assert qa50_domain({"domain": "gross"}) == "gross"
    with pytest.raises(ValueError, match="question '3'.*no true flag"):
        qa50_domain({"question_id": 3, "domain": {"mri": False}})


def test_score_chat_relative_score_overall_by_type_and_domain(openai_server, tmp_path):
    openai_server.responder = _chat_judge
    backend = OpenAIChatBackend(openai_server.url, model="judge")
    summary = score_chat(QUESTIONS, ANSWERS, backend, tmp_path, progress=False)
    assert summary["overall"]["relative_score"] == pytest.approx(_expected(range(10)))
    assert summary["overall"]["n"] == 10 and summary["unparseable"]["count"] == 0
    conversation = [i for i in range(10) if i % 3]
    assert summary["by_type"]["conversation"]["relative_score"] == pytest.approx(_expected(conversation))
    assert summary["by_type"]["detailed_description"]["relative_score"] == pytest.approx(_expected([0, 3, 6, 9]))
    assert list(summary["by_domain"]) == list(DOMAINS)
    assert summary["by_domain"]["mri"]["relative_score"] == pytest.approx(_expected([1, 6]))
    model_mean = sum(i % 4 + 4 for i in range(10)) / 10
    assert summary["overall"]["ratio_of_means"] == pytest.approx(100 * model_mean / 8)
    assert json.loads((tmp_path / "chat_scores.json").read_text())["overall"] == summary["overall"]
    first_request = openai_server.chat_requests()[0].body
    assert first_request["temperature"] == 0.0 and first_request["messages"][0]["role"] == "system"


def test_unparseable_judgements_are_counted_never_dropped(openai_server, tmp_path):
    def judge(body):
        i = int(re.search(r"model answer (\d+)", body["messages"][1]["content"]).group(1))
        return {2: Reply("Both answers are good."), 5: Reply("0 7"),
                7: Reply(status=400, body=b'{"error": {"message": "content filter"}}')}.get(i) or _chat_judge(body)

    openai_server.responder = judge
    summary = score_chat(QUESTIONS, ANSWERS, OpenAIChatBackend(openai_server.url, model="judge"), tmp_path,
                         progress=False)
    assert summary["unparseable"]["by_reason"] == {"no_scores": 1, "out_of_range": 1, "request_failed": 1}
    assert sorted(summary["unparseable"]["ids"]) == ["2", "5", "7"]
    assert summary["overall"]["n"] == 7 and summary["n_questions"] == 10
    assert summary["overall"]["relative_score"] == pytest.approx(_expected([0, 1, 3, 4, 6, 8, 9]))
    assert summary["run"]["failed"] == 1
    statuses = {json.loads(line)["question_id"]: json.loads(line)["status"]
                for line in (tmp_path / "chat_judgements.jsonl").read_text().splitlines()}
    assert statuses["2"] == "no_scores" and statuses["7"] == "request_failed" and len(statuses) == 10


def test_score_chat_survives_429_500_malformed_and_slow_replies(openai_server, tmp_path):
    openai_server.responder = _chat_judge
    openai_server.enqueue(Reply.rate_limited(retry_after=0.01), Reply.server_error(500), Reply.malformed(),
                          Reply.server_error(503))
    backend = OpenAIChatBackend(openai_server.url, model="judge", timeout=0.3)
    slow_once = {"left": 1}

    def judge(body):
        if slow_once["left"]:
            slow_once["left"] -= 1
            return Reply.slow("8 8", delay=1.0)  # longer than the timeout: retried
        return _chat_judge(body)

    openai_server.responder = judge
    summary = score_chat(QUESTIONS, ANSWERS, backend, tmp_path, concurrency=2, progress=False)
    assert summary["overall"]["n"] == 10 and summary["unparseable"]["count"] == 0
    assert summary["overall"]["relative_score"] == pytest.approx(_expected(range(10)))
    assert len(openai_server.chat_requests()) == 15  # 10 questions + 5 retries


def test_resumed_chat_judging_sends_no_request_twice(openai_server, tmp_path):
    openai_server.responder = _chat_judge
    backend = OpenAIChatBackend(openai_server.url, model="judge")
    score_chat(QUESTIONS[:6], ANSWERS[:6], backend, tmp_path, progress=False)  # an "interrupted" first run
    summary = score_chat(QUESTIONS, ANSWERS, backend, tmp_path, progress=False)
    sent = [re.search(r"model answer (\d+)", r.body["messages"][1]["content"]).group(1)
            for r in openai_server.chat_requests()]
    assert sorted(sent, key=int) == [str(i) for i in range(10)]
    assert summary["run"]["skipped"] == 6 and summary["run"]["done"] == 4
    assert summary["overall"]["relative_score"] == pytest.approx(_expected(range(10)))


def test_answers_that_do_not_match_the_questions_are_an_error(openai_server, tmp_path):
    backend = OpenAIChatBackend(openai_server.url, model="judge")
    with pytest.raises(ValueError, match="1 question\\(s\\) without an answer.*'9'"):
        score_chat(QUESTIONS, ANSWERS[:9], backend, tmp_path, progress=False)
    with pytest.raises(ValueError, match="answers record 0 \\(id '0'\\): missing field 'text'"):
        score_chat(QUESTIONS[:1], [{"question_id": 0, "txt": "x"}], backend, tmp_path, progress=False)
    assert not openai_server.chat_requests()


def test_empty_predictions_are_judged_and_counted(openai_server, tmp_path):
    openai_server.responder = lambda body: "8 1\nno answer given"
    answers = {str(q["question_id"]): "" if q["question_id"] < 3 else "x" for q in QUESTIONS}
    summary = score_chat(QUESTIONS, answers, OpenAIChatBackend(openai_server.url, model="judge"), tmp_path,
                         progress=False)
    assert summary["empty_predictions"] == 3 and summary["overall"]["n"] == 10


# --- win rate --------------------------------------------------------------------------------------------------

WR_QUESTIONS = [{"id": f"q{i}", "question": f"Is there an effusion in case {i}?", "answer": "yes"}
                for i in range(8)]
GOOD = {f"q{i}": f"good answer {i}" for i in range(8)}
BAD = {f"q{i}": f"bad answer {i}" for i in range(8)}


def _answers_in_order(body):
    text = body["messages"][3]["content"]
    return re.findall(r"\[The Start of Assistant [AB]'s Answer\]\n(\w+) answer (\d+)", text)


def _fair_judge(body) -> str:
    """Prefers the good answer wherever it is shown; ties q0; contradicts itself by position on q1."""
    (first, i), (second, _) = _answers_in_order(body)
    if i == "0":
        return "Equally good. [[C]]"
    if i == "1":
        return "[[A]]"  # always the first shown: position bias -> inconsistent
    return "A is right." + (" [[A]]" if first == "good" else " [[B]]")


def test_verdict_parsing_and_order_combination_are_strict():
    assert parse_verdict("Explanation... [[B]]") == "B"
    assert parse_verdict("[[A]] because ... so [[A]]") == "A"
    assert parse_verdict("[[A]] or maybe [[B]]") is None
    assert parse_verdict("A is better") is None and parse_verdict("[A]") is None
    assert combine_orders("A", "B") == "win" and combine_orders("B", "A") == "loss"
    assert combine_orders("A", "C") == "win" and combine_orders("C", "A") == "loss"
    assert combine_orders("C", "C") == "tie" and combine_orders("A", "A") == "inconsistent"
    assert combine_orders(None, "A") is None


def test_win_rate_judges_both_orders_and_cancels_position_bias(openai_server, tmp_path):
    openai_server.responder = _fair_judge
    backend = OpenAIChatBackend(openai_server.url, model="judge")
    summary = win_rate(WR_QUESTIONS, GOOD, BAD, backend, tmp_path, model_a="good", model_b="bad", progress=False)
    assert (summary["wins"], summary["ties"], summary["losses"]) == (6, 2, 0)
    assert summary["inconsistent"] == 1 and summary["unparseable"]["count"] == 0
    assert summary["win_rate"] == pytest.approx(6 / 8)
    assert summary["win_rate_ties_half"] == pytest.approx(7 / 8)
    orders = [tuple(kind for kind, _ in _answers_in_order(r.body)) for r in openai_server.chat_requests()]
    assert orders.count(("good", "bad")) == 8 and orders.count(("bad", "good")) == 8
    reverse = win_rate(WR_QUESTIONS, BAD, GOOD, backend, tmp_path / "reverse", progress=False)
    assert (reverse["wins"], reverse["losses"]) == (0, 6)


def test_win_rate_message_layout_with_image():
    image = make_rgb_image(8, 8)
    system, first, reference, answers = build_win_rate_messages("Q?", "ref", "a1", "b1", image=image)
    assert system["role"] == "system" and "[[C]]" in system["content"]
    assert first["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert first["content"][1] == {"type": "text", "text": "Q?"}
    assert reference["content"] == "[The Start of Reference Answer]\nref\n[The End of Reference Answer]"
    assert answers["content"].startswith("[The Start of Assistant A's Answer]\na1\n[The End of Assistant A's Answer]")


def test_win_rate_counts_unparseable_and_resumes_without_resending(openai_server, tmp_path):
    def judge(body):
        (_, i), _ = _answers_in_order(body)
        return "I cannot decide." if i == "3" else _fair_judge(body)

    openai_server.responder = judge
    backend = OpenAIChatBackend(openai_server.url, model="judge")
    first = win_rate(WR_QUESTIONS[:4], {k: GOOD[k] for k in ("q0", "q1", "q2", "q3")},
                     {k: BAD[k] for k in ("q0", "q1", "q2", "q3")}, backend, tmp_path, progress=False)
    assert first["unparseable"] == {"count": 1, "by_reason": {"no_verdict": 1}, "ids": ["q3"]}
    summary = win_rate(WR_QUESTIONS, GOOD, BAD, backend, tmp_path, progress=False)
    assert len(openai_server.chat_requests()) == 16  # 8 questions x 2 orders, none sent twice
    assert summary["run"]["skipped"] == 8 and summary["unparseable"]["count"] == 1
    assert summary["wins"] + summary["ties"] + summary["losses"] == 7


def test_win_rate_images_are_sent_and_a_missing_image_is_a_clear_error(openai_server, tmp_path):
    openai_server.responder = _fair_judge
    backend = OpenAIChatBackend(openai_server.url, model="judge")
    questions = [dict(q, image="missing/q.jpg") for q in WR_QUESTIONS[2:4]]
    answers = ({k: GOOD[k] for k in ("q2", "q3")}, {k: BAD[k] for k in ("q2", "q3")})
    with pytest.raises(ValueError, match="question 'q2': image 'missing/q.jpg' is not a file"):
        win_rate(questions, *answers, backend, tmp_path, progress=False)
    images = {"q2": make_rgb_image(seed=2), "q3": [make_rgb_image(seed=3)]}
    summary = win_rate(questions, *answers, backend, tmp_path, images=images, progress=False)
    assert summary["wins"] == 2
    parts = [r.body["messages"][1]["content"] for r in openai_server.chat_requests()]
    assert all(p[0]["image_url"]["url"].startswith("data:image/png;base64,") for p in parts) and len(parts) == 4
    text_only = win_rate(questions, *answers, backend, tmp_path / "text", with_images=False, progress=False)
    assert text_only["wins"] == 2 and isinstance(openai_server.chat_requests()[-1].body["messages"][1]["content"], str)
