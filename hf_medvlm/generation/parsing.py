"""Parsers for the replies of the three generation methods. Pure functions: text in, structured result out.

Every parser reports *why* it dropped or rejected something (a short reason string), so that pipelines can count
drops by reason instead of losing records silently.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field

__all__ = [
    "TurnParseResult",
    "parse_user_assistant_turns",
    "TwoAnswerParseResult",
    "parse_two_answer_turns",
    "compile_turn_filters",
    "filter_turn_pairs",
    "ReformatParse",
    "parse_reformat_json",
    "ScoreParse",
    "parse_score_line",
]

# ----------------------------------------------------------------------------------------------------------------------
# LLaVA-Med / BioMed-VITAL transcripts: "User: ...\nAssistant: ..."

# Speaker tags as models actually write them: plain, bold markdown, "Human"/"GPT" aliases, optional numbering.
_SPEAKER = re.compile(
    r"^\s*(?:[-*>]\s*)?(?:\*\*|__)?\s*(user|human|question|assistant|gpt|answer)\s*(?:\d+\s*)?(?:\*\*|__)?\s*:\s*"
    r"(?:\*\*|__)?\s*",
    re.IGNORECASE,
)
_ASKER = {"user", "human", "question"}


@dataclass
class TurnParseResult:
    """Question/answer pairs in order, and the count of dropped fragments by reason."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    drops: Counter = field(default_factory=Counter)


def _split_speaker_blocks(text: str) -> tuple[list[tuple[str, str]], Counter]:
    """Group lines into (speaker, text) blocks; continuation lines belong to the block above them."""
    blocks: list[list] = []
    drops: Counter = Counter()
    for line in text.splitlines():
        match = _SPEAKER.match(line)
        if match:
            role = "user" if match.group(1).lower() in _ASKER else "assistant"
            blocks.append([role, line[match.end():].strip()])
        elif blocks:
            # Multi-line answers (lists, paragraphs) are kept whole instead of being truncated at the first newline.
            blocks[-1][1] += "\n" + line.rstrip()
        elif line.strip():
            drops["preamble"] += 1
    return [(role, body.strip()) for role, body in blocks], drops


def parse_user_assistant_turns(text: str) -> TurnParseResult:
    """Parse a ``User: ... / Assistant: ...`` transcript into question/answer pairs.

    Chatter before the first speaker tag is dropped as ``preamble``; a question without an answer as
    ``unanswered_question``; an answer without a question as ``orphan_answer``; empty turns as ``empty_turn``.
    Two answers in a row are merged (a model sometimes repeats the tag mid-answer).
    """
    blocks, drops = _split_speaker_blocks(text or "")
    result = TurnParseResult(drops=drops)
    question: str | None = None
    for role, body in blocks:
        if role == "user":
            if question is not None:
                result.drops["unanswered_question"] += 1
            question = body
        elif question is None:
            if result.pairs and body:
                last_q, last_a = result.pairs[-1]
                result.pairs[-1] = (last_q, f"{last_a}\n{body}")
            else:
                result.drops["orphan_answer"] += 1
        else:
            if question and body:
                result.pairs.append((question, body))
            else:
                result.drops["empty_turn"] += 1
            question = None
    if question is not None:
        result.drops["unanswered_question"] += 1
    if not blocks:
        result.drops["no_turns"] += 1
    return result


@dataclass
class TwoAnswerParseResult:
    """(question, answer 1, answer 2) triples in order, and the count of dropped fragments by reason."""

    triples: list[tuple[str, str, str]] = field(default_factory=list)
    drops: Counter = field(default_factory=Counter)


def parse_two_answer_turns(text: str) -> TwoAnswerParseResult:
    """Parse a ``User: ... / Answer 1: ... / Answer 2: ...`` transcript (BioMed-VITAL's annotation candidates).

    A question needs exactly two answers after it: one is dropped as ``one_answer``, three or more as
    ``too_many_answers``, an answer before any question as ``orphan_answer``, chatter before the first tag as
    ``preamble``.
    """
    blocks, drops = _split_speaker_blocks(text or "")
    result = TwoAnswerParseResult(drops=drops)
    groups: list[list[str]] = []
    for role, body in blocks:
        if role == "user":
            groups.append([body])
        elif groups:
            groups[-1].append(body)
        else:
            result.drops["orphan_answer"] += 1
    for group in groups:
        question, answers = group[0], [a for a in group[1:] if a]
        if not question or len(answers) < 2:
            result.drops["empty_question" if not question else "one_answer" if answers else "unanswered_question"] += 1
        elif len(answers) > 2:
            result.drops["too_many_answers"] += 1
        else:
            result.triples.append((question, answers[0], answers[1]))
    if not blocks:
        result.drops["no_turns"] += 1
    return result


def compile_turn_filters(rules: dict) -> list[tuple[str, re.Pattern]]:
    """Compile ``{reason: [phrase, ...]}`` into case-insensitive whole-word patterns (keys not lists are skipped)."""
    compiled = []
    for reason, phrases in rules.items():
        if not isinstance(phrases, list) or not phrases:
            continue
        alternatives = "|".join(re.escape(str(p).strip()) for p in phrases)
        compiled.append((reason, re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)))
    return compiled


def filter_turn_pairs(
    pairs: list[tuple[str, str]], filters: list[tuple[str, re.Pattern]]
) -> tuple[list[tuple[str, str]], Counter]:
    """Drop each pair whose question or answer matches a rule; count drops by the first matching reason."""
    kept, drops = [], Counter()
    for question, answer in pairs:
        reason = next((name for name, pattern in filters if pattern.search(question) or pattern.search(answer)), None)
        if reason is None:
            kept.append((question, answer))
        else:
            drops[reason] += 1
    return kept, drops


# ----------------------------------------------------------------------------------------------------------------------
# PubMedVision: {"Image_description": ..., "QA-query": ..., "QA-answer": ...}

REFORMAT_KEYS = ("Image_description", "QA-query", "QA-answer")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


@dataclass
class ReformatParse:
    """The three fields on success (``reason`` empty), else ``reason`` says why the reply was rejected."""

    image_description: str = ""
    qa_query: str = ""
    qa_answer: str = ""
    repaired: bool = False
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


_KEY_ALIASES = {
    "imagedescription": "Image_description",
    "description": "Image_description",
    "qaquery": "QA-query",
    "qaquestion": "QA-query",
    "query": "QA-query",
    "question": "QA-query",
    "qaanswer": "QA-answer",
    "answer": "QA-answer",
}


def _candidate_json(text: str) -> str | None:
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start = body.find("{")
    if start < 0:
        return None
    end = body.rfind("}")
    # A reply cut off by max_tokens has no closing brace; try closing it ourselves.
    return body[start:end + 1] if end > start else body[start:]


def _repairs(candidate: str):
    """Yield progressively more invasive repairs of a slightly-off JSON object (each loaded with `strict=False`,
    which accepts the most common slip: raw newlines and tabs inside strings)."""
    text = candidate.translate(_SMART_QUOTES)
    yield text
    text = _TRAILING_COMMA.sub(r"\1", text)
    yield text
    stripped = text.rstrip()
    if not stripped.endswith("}"):
        closing = '"}' if stripped.count('"') % 2 else "}"
        yield stripped + closing
    # Single-quoted keys/values (Python-dict style): only when there are no double quotes to confuse.
    if '"' not in text:
        yield text.replace("'", '"')


def _load_object(candidate: str) -> tuple[dict | None, bool]:
    with suppress(json.JSONDecodeError):
        obj = json.loads(candidate)
        return (obj if isinstance(obj, dict) else None), False
    for attempt in _repairs(candidate):
        with suppress(json.JSONDecodeError):
            if isinstance(obj := json.loads(attempt, strict=False), dict):
                return obj, True
    return None, False


def parse_reformat_json(text: str) -> ReformatParse:
    """Parse a PubMedVision reformatting reply, repairing slightly-off JSON; reject with a reason otherwise.

    Repairs: code fences and chatter around the object, smart quotes, raw newlines in strings, trailing commas,
    a missing closing brace, single quotes, and key spellings such as ``"QA query"`` or ``"image description"``.
    Rejection reasons: ``empty_reply``, ``no_json_object``, ``invalid_json``, ``missing_<key>``, ``empty_<key>``.
    """
    if not text or not text.strip():
        return ReformatParse(reason="empty_reply")
    candidate = _candidate_json(text)
    if candidate is None:
        return ReformatParse(reason="no_json_object")
    obj, repaired = _load_object(candidate)
    if obj is None:
        return ReformatParse(reason="invalid_json")
    fields: dict[str, str] = {}
    for key, value in obj.items():
        canonical = _KEY_ALIASES.get(re.sub(r"[^a-z]", "", str(key).lower()))
        if canonical and canonical not in fields:
            repaired = repaired or canonical != key
            fields[canonical] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    for key in REFORMAT_KEYS:
        if key not in fields:
            return ReformatParse(reason=f"missing_{key}")
        if not fields[key].strip():
            return ReformatParse(reason=f"empty_{key}")
    return ReformatParse(*(fields[key].strip() for key in REFORMAT_KEYS), repaired=repaired)


# ----------------------------------------------------------------------------------------------------------------------
# BioMed-VITAL rating: the first line holds one integer score 0-10 per Q&A pair, separated by blanks.

_SCORE_TOKEN = re.compile(r"^(?:10|[0-9])$")


@dataclass
class ScoreParse:
    """One score per Q&A pair on success (``reason`` empty), else ``scores`` is None and ``reason`` says why."""

    scores: list[int] | None
    reason: str = ""


def parse_score_line(text: str, num_pairs: int) -> ScoreParse:
    """Strictly parse the score line of a BioMed-VITAL rating reply (Figure 9).

    The first non-empty line must consist only of integers 0..10 separated by whitespace, exactly one per Q&A pair.
    Anything else is refused rather than guessed (the authors' scorer took the first integer anywhere in the reply,
    which silently turns "Scores out of 10:" or "Q1: 7" into a score). Reasons: ``empty_reply``, ``no_score_line``,
    ``score_out_of_range``, ``wrong_score_count``.
    """
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ScoreParse(None, "empty_reply")
    tokens = lines[0].split()
    if not all(re.fullmatch(r"\d+", token) for token in tokens):
        return ScoreParse(None, "no_score_line")
    if not all(_SCORE_TOKEN.match(token) for token in tokens):
        return ScoreParse(None, "score_out_of_range")
    if len(tokens) != num_pairs:
        return ScoreParse(None, "wrong_score_count")
    return ScoreParse([int(token) for token in tokens])
