"""LLM-judged evaluations: the LLaVA-Med qa50 relative score and the BioMed-VITAL pairwise win rate.

Both send their judge requests through `hf_medvlm.llm.run_requests`, so a run is resumable (a rerun sends no request
that was already answered) and costs are reported. Every question ends up scored or counted under a named reason
(`no_scores`, `out_of_range`, `no_verdict`, `request_failed`, ...); nothing is dropped silently.

- `score_chat(questions, answers, backend, output_dir)`: qa50 as in LLaVA-Med §7.2 of our reference notes. The judge
  sees the caption and mentions, the question, the reference answer (Assistant 1) and the model's (Assistant 2), and
  puts two 1–10 scores on its first line. Relative score = mean over questions of (model / reference) × 100, overall,
  by type and by domain. The ratio of means (upstream LLaVA's summary) is reported too, under its own name.
- `win_rate(questions, answers_a, answers_b, backend, output_dir)`: BioMed-VITAL's reference-guided pairwise judge
  (MT-Bench `[[A]]`/`[[B]]`/`[[C]]` verdicts). Each question is judged twice, once in each order; a question is a
  win (loss) when one order prefers A (B) and the other agrees or calls a tie, and a tie when both tie or the two
  orders contradict each other (counted as `inconsistent`).
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ..files import atomic_write_text
from ..llm import ChatRequest, image_to_data_url, read_results, run_requests
from .benchmark import row_id

__all__ = [
    "QA50_TYPES",
    "QA50_DOMAINS",
    "load_judge_prompt",
    "answers_by_id",
    "qa50_domain",
    "build_chat_judge_messages",
    "parse_score_pair",
    "summarize_chat_scores",
    "score_chat",
    "build_win_rate_messages",
    "parse_verdict",
    "combine_orders",
    "win_rate",
]

QA50_TYPES = ("conversation", "detailed_description")
QA50_DOMAINS = ("chest_xray", "mri", "histology", "gross", "ct_scan")  # the original's order: first true wins


@functools.lru_cache(maxsize=None)
def load_judge_prompt(name: str) -> dict[str, str]:
    """A judge prompt data file from `hf_medvlm/eval/prompts/` by stem, e.g. `"llava_med_qa50_judge"`."""
    return yaml.safe_load((Path(__file__).parent / "prompts" / f"{name}.yaml").read_text(encoding="utf-8"))


# --- inputs -----------------------------------------------------------------------------------------------------


def _field(row: Mapping, keys: tuple[str, ...], where: str) -> Any:
    for key in keys:
        if key in row and row[key] is not None:
            return row[key]
    raise ValueError(f"{where}: missing field {' / '.join(repr(k) for k in keys)}.")


def answers_by_id(answers, question_ids: list[str], *, name: str = "answers") -> dict[str, str]:
    """Model answers keyed by question id, from a `{id: text}` mapping or rows with `question_id`/`id` and
    `text`/`prediction`/`answer`. Ids must match the questions exactly; a mismatch is an error naming them."""
    if isinstance(answers, Mapping):
        by_id = {str(k): v for k, v in answers.items()}
    else:
        by_id = {}
        for i, row in enumerate(answers):
            where = f"{name} record {i}"
            answer_id = row_id(row, where)
            if answer_id in by_id:
                raise ValueError(f"{where}: duplicate answer for question id {answer_id!r}.")
            by_id[answer_id] = _field(row, ("text", "prediction", "answer"), f"{where} (id {answer_id!r})")
    missing = [q for q in question_ids if q not in by_id]
    extra = sorted(set(by_id) - set(question_ids))
    if missing or extra:
        raise ValueError(
            f"{name} ids don't match the questions: {len(missing)} question(s) without an answer "
            f"(e.g. {missing[:3]}), {len(extra)} answer(s) for unknown questions (e.g. {extra[:3]})."
        )
    for answer_id, text in by_id.items():
        if not isinstance(text, str):
            raise ValueError(f"{name}: answer for question id {answer_id!r} is {type(text).__name__}, not text.")
    return by_id


def qa50_domain(row: Mapping) -> str:
    """The qa50 domain: a string as is, or the first true flag of the original's domain dict."""
    domain = row.get("domain")
    if isinstance(domain, str) and domain:
        return domain
    if isinstance(domain, Mapping):
        for name in QA50_DOMAINS:
            if domain.get(name):
                return name
    raise ValueError(f"qa50 question {row_id(row, 'qa50 question')!r}: 'domain' has no true flag ({domain!r}).")


# --- qa50 chat judge --------------------------------------------------------------------------------------------


def _mentions_text(mentions, style: str) -> str:
    if style == "original":
        return f"{mentions}"  # the original formats the raw list (dicts and all) with an f-string
    items = mentions if isinstance(mentions, list) else [mentions]
    texts = [m.get("tokens", m) if isinstance(m, Mapping) else m for m in items]
    return "\n\t- ".join(" ".join(t) if isinstance(t, list) else str(t) for t in texts)


def build_chat_judge_messages(question: Mapping, model_answer: str, *, mentions_style: str = "original",
                              strip_image_token: bool = False) -> list[dict[str, str]]:
    """The qa50 judge messages in the original layout (system message + one user message).

    `question` has qa50 keys: `text` (or `question`), `gpt4_answer` (or `answer`: the reference), `fig_caption`,
    `fig_label`, `in_text_mention`. `mentions_style="clean"` lists mention texts instead of the raw list;
    `strip_image_token` drops the `<image>` placeholder as v1.0 did (v1.5 keeps it).
    """
    where = f"qa50 question {row_id(question, 'qa50 question')!r}"
    text = _field(question, ("text", "question"), where)
    if strip_image_token:
        text = text.replace("<image>", "").strip()
    prompt = load_judge_prompt("llava_med_qa50_judge")
    content = (
        f"[Context]\nFigure Caption:\n{question.get('fig_label', '')}: {_field(question, ('fig_caption',), where)}"
        f"\n\nFigure Context:\n\t- {_mentions_text(question.get('in_text_mention', []), mentions_style)}\n\n"
        f"[Question]\n{text}\n\n"
        f"[Assistant 1]\n{_field(question, ('gpt4_answer', 'answer'), where)}\n\n[End of Assistant 1]\n\n"
        f"[Assistant 2]\n{model_answer}\n\n[End of Assistant 2]\n\n"
        f"[System]\n{prompt['instruction']}\n\n"
    )
    return [{"role": "system", "content": prompt["system"]}, {"role": "user", "content": content}]


_NUMBER = re.compile(r"^\d+(\.\d+)?$")


def parse_score_pair(text: str) -> tuple[tuple[float, float] | None, str | None]:
    """`((reference, model), None)` from the judge's first line, which must hold exactly two numbers (space or
    comma separated, as the original accepts) in 1–10; otherwise `(None, reason)`."""
    first_line = (text or "").strip().split("\n")[0]
    tokens = first_line.replace(",", " ").split()
    if len(tokens) != 2 or not all(_NUMBER.match(t) for t in tokens):
        return None, "no_scores"
    reference, model = float(tokens[0]), float(tokens[1])
    if not (1 <= reference <= 10 and 1 <= model <= 10):
        return None, "out_of_range"
    return (reference, model), None


def _group_scores(records: list[dict]) -> dict[str, Any]:
    scored = [r for r in records if r["status"] == "scored"]
    counts = {"n": len(scored), "unparseable": len(records) - len(scored)}
    if not scored:
        return {**dict.fromkeys(("relative_score", "reference_score", "model_score", "ratio_of_means")), **counts}
    reference = sum(r["reference_score"] for r in scored) / len(scored)
    model = sum(r["model_score"] for r in scored) / len(scored)
    relative = 100 * sum(r["model_score"] / r["reference_score"] for r in scored) / len(scored)
    return {"relative_score": round(relative, 4), "reference_score": round(reference, 4),
            "model_score": round(model, 4), "ratio_of_means": round(100 * model / reference, 4), **counts}


def summarize_chat_scores(records: list[dict]) -> dict[str, Any]:
    """Relative scores overall, by type and by domain from per-question records (`status`, `type`, `domain`,
    `reference_score`, `model_score`)."""
    by_type, by_domain = defaultdict(list), defaultdict(list)
    for record in records:
        by_type[record["type"]].append(record)
        by_domain[record["domain"]].append(record)
    order = {name: i for i, name in enumerate(QA50_TYPES + QA50_DOMAINS)}
    reasons = Counter(r["status"] for r in records if r["status"] != "scored")
    return {
        "overall": _group_scores(records),
        "by_type": {k: _group_scores(by_type[k]) for k in sorted(by_type, key=lambda k: (order.get(k, 99), k))},
        "by_domain": {k: _group_scores(by_domain[k]) for k in sorted(by_domain, key=lambda k: (order.get(k, 99), k))},
        "n_questions": len(records),
        "n_scored": sum(r["status"] == "scored" for r in records),
        "unparseable": {"count": sum(reasons.values()), "by_reason": dict(reasons),
                        "ids": [r["question_id"] for r in records if r["status"] != "scored"]},
    }


def _chat_record(question: Mapping, qid: str, answer: str, result: dict | None) -> dict[str, Any]:
    scores, reason = parse_score_pair(result["text"]) if result else (None, "request_failed")
    reference, model = scores or (None, None)
    return {"question_id": qid, "type": question.get("type") or "unknown", "domain": qa50_domain(question),
            "empty_prediction": not answer.strip(), "judge_text": result["text"] if result else None,
            "reference_score": reference, "model_score": model, "status": reason or "scored"}


def score_chat(
    questions: Iterable[Mapping],
    answers,
    backend,
    output_dir: str | Path,
    *,
    concurrency: int = 8,
    max_tokens: int | None = None,
    mentions_style: str = "original",
    strip_image_token: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Judge model answers to qa50-style questions; returns the summary and writes into `output_dir`:
    `chat_judge.jsonl` (raw judge replies, resumable), `chat_judge.report.json` (tokens, cost),
    `chat_judgements.jsonl` (one parsed record per question) and `chat_scores.json` (the summary)."""
    questions = list(questions)
    ids = [row_id(q, f"qa50 question {i}") for i, q in enumerate(questions)]
    answer_text = answers_by_id(answers, ids)
    jobs = [
        (qid, ChatRequest(build_chat_judge_messages(q, answer_text[qid], mentions_style=mentions_style,
                                                    strip_image_token=strip_image_token), max_tokens=max_tokens))
        for q, qid in zip(questions, ids)
    ]
    output_dir = Path(output_dir)
    report = run_requests(jobs, backend, output_path=output_dir / "chat_judge.jsonl", concurrency=concurrency,
                          desc="qa50 judge", progress=progress)
    results = read_results(output_dir / "chat_judge.jsonl")
    records = [_chat_record(q, qid, answer_text[qid], results.get(qid)) for q, qid in zip(questions, ids)]
    summary = {
        "protocol": "llava_med qa50 relative score (mean of per-question model/reference ratios x 100)",
        "judge_model": getattr(backend, "name", None),
        **summarize_chat_scores(records),
        "empty_predictions": sum(r["empty_prediction"] for r in records),
        "run": report.to_dict(),
    }
    _write_jsonl(output_dir / "chat_judgements.jsonl", records)
    atomic_write_text(output_dir / "chat_scores.json", json.dumps(summary, indent=2) + "\n")
    return summary


# --- BioMed-VITAL pairwise win rate ------------------------------------------------------------------------------


def _image_part(image) -> dict[str, Any]:
    if isinstance(image, Mapping):  # a `datasets` Image feature not decoded: {"bytes": ..., "path": ...}
        image = image.get("bytes") or image.get("path")
    return {"type": "image_url", "image_url": {"url": image_to_data_url(image)}}


def build_win_rate_messages(question: str, reference: str, answer_a: str, answer_b: str,
                            image=None) -> list[dict[str, Any]]:
    """The win-rate judge messages in BioMed-VITAL's layout (Figure 10): system; user [image, question];
    user reference answer; user both answers. Without an image the second message is the question alone."""
    prompt = load_judge_prompt("biomed_vital_win_rate_judge")
    first: Any = question if image is None else [_image_part(image), {"type": "text", "text": question}]
    return [
        {"role": "system", "content": prompt["system"]},
        {"role": "user", "content": first},
        {"role": "user", "content": prompt["reference_template"].format(reference=reference)},
        {"role": "user", "content": prompt["answers_template"].format(answer_a=answer_a, answer_b=answer_b)},
    ]


_VERDICT = re.compile(r"\[\[([ABC])\]\]")


def parse_verdict(text: str) -> str | None:
    """`"A"`, `"B"` or `"C"` (tie) when the reply holds verdict tokens of exactly one kind; None when it holds none
    or contradictory ones (e.g. both `[[A]]` and `[[B]]`)."""
    found = set(_VERDICT.findall(text or ""))
    return found.pop() if len(found) == 1 else None


def combine_orders(first: str | None, second: str | None) -> str | None:
    """One outcome for model A from its verdicts with A shown first (`first`) and shown second (`second`, raw
    letters as the judge wrote them): "win", "loss", "tie", "inconsistent" (a win and a loss), or None."""
    if first is None or second is None:
        return None
    as_a = {"A": "win", "B": "loss", "C": "tie"}[first]
    as_b = {"A": "loss", "B": "win", "C": "tie"}[second]  # in the swapped order, "[[A]]" names model B
    decided = {as_a, as_b} - {"tie"}  # a tie and a win is a win
    if len(decided) == 2:
        return "inconsistent"
    return decided.pop() if decided else "tie"


def _question_image(question: Mapping, qid: str, images: Mapping | None):
    image = images.get(qid) if images is not None else question.get("image")
    if isinstance(image, (list, tuple)):  # several images: the judge layout has room for one; use the first
        image = image[0] if image else None
    if isinstance(image, (str, Path)) and not Path(image).is_file():
        raise ValueError(f"question {qid!r}: image {str(image)!r} is not a file; pass resolved images "
                         "(images={id: PIL image}) or with_images=False to judge on text only.")
    return image


def _win_rate_jobs(questions, ids, text_a, text_b, with_images, images):
    for question, qid in zip(questions, ids):
        where = f"question {qid!r}"
        q_text = _field(question, ("question", "text"), where)
        reference = _field(question, ("answer", "gpt4_answer"), where)
        image = _question_image(question, qid, images) if with_images else None
        yield f"{qid}::AB", ChatRequest(build_win_rate_messages(q_text, reference, text_a[qid], text_b[qid], image))
        yield f"{qid}::BA", ChatRequest(build_win_rate_messages(q_text, reference, text_b[qid], text_a[qid], image))


def win_rate(
    questions: Iterable[Mapping],
    answers_a,
    answers_b,
    backend,
    output_dir: str | Path,
    *,
    model_a: str = "A",
    model_b: str = "B",
    with_images: bool = True,
    images: Mapping | None = None,
    concurrency: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Pairwise win rate of `answers_a` over `answers_b` with the reference answer (eval-schema rows: `id`,
    `question`, `answer`, optional `image`; or `images={id: image}` with already-loaded images); each question
    judged in both orders. Writes `win_rate_judge.jsonl`
    (raw, resumable), `win_rate_judgements.jsonl` and `win_rate.json` into `output_dir`; returns the summary."""
    questions = list(questions)
    ids = [row_id(q, f"question {i}") for i, q in enumerate(questions)]
    text_a = answers_by_id(answers_a, ids, name=f"answers of {model_a}")
    text_b = answers_by_id(answers_b, ids, name=f"answers of {model_b}")
    output_dir = Path(output_dir)
    raw_path = output_dir / "win_rate_judge.jsonl"
    jobs = list(_win_rate_jobs(questions, ids, text_a, text_b, with_images, images))
    report = run_requests(jobs, backend, output_path=raw_path, concurrency=concurrency, desc="win-rate judge",
                          progress=progress)
    results = read_results(raw_path)
    records = [_win_rate_record(qid, results) for qid in ids]
    summary = {"protocol": "biomed_vital pairwise win rate with reference, both orders",
               "model_a": model_a, "model_b": model_b, "judge_model": getattr(backend, "name", None),
               **_summarize_win_rate(records), "run": report.to_dict()}
    _write_jsonl(output_dir / "win_rate_judgements.jsonl", records)
    atomic_write_text(output_dir / "win_rate.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _win_rate_record(qid: str, results: dict[str, dict]) -> dict[str, Any]:
    first, second = results.get(f"{qid}::AB"), results.get(f"{qid}::BA")
    verdicts = [parse_verdict(reply["text"]) if reply else None for reply in (first, second)]
    outcome = combine_orders(*verdicts) or ("request_failed" if first is None or second is None else "no_verdict")
    return {"question_id": qid, "verdict_a_first": verdicts[0], "verdict_b_first": verdicts[1], "outcome": outcome}


def _summarize_win_rate(records: list[dict]) -> dict[str, Any]:
    outcomes = Counter(r["outcome"] for r in records)
    wins, losses = outcomes["win"], outcomes["loss"]
    ties = outcomes["tie"] + outcomes["inconsistent"]
    decided = wins + losses + ties
    unjudged = [r["question_id"] for r in records if r["outcome"] in ("no_verdict", "request_failed")]
    return {
        "n_questions": len(records),
        "wins": wins, "ties": ties, "losses": losses, "inconsistent": outcomes["inconsistent"],
        "unparseable": {"count": len(unjudged),
                        "by_reason": {k: outcomes[k] for k in ("no_verdict", "request_failed") if outcomes[k]},
                        "ids": unjudged},
        "win_rate": round(wins / decided, 6) if decided else None,
        "win_rate_ties_half": round((wins + 0.5 * ties) / decided, 6) if decided else None,
        "per_order_verdicts": {order: dict(Counter(r[f"verdict_{order}"] or "unparseable" for r in records))
                               for order in ("a_first", "b_first")},
    }


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
