"""BioMed-VITAL (Cui et al., 2024) data generation, Section 3.1 and Appendices B-C:

1. Demonstration selection: embed image + text, K-means into K clusters, sample uniformly across clusters (the
   candidates clinicians then annotate). For them ``candidate_jobs`` / ``candidate_rows`` ask for two answers per
   question (Section 3.1), exported for clinicians by ``hf-medvlm select export-annotations``.
2. Generation: per call, sample demonstrations per modality (paper: 2 for each of 5 modalities), then ask for a
   multi-round conversation about the query image + caption/context (Figure 8).
3. Model-based rating with the clinician-curated criteria (Figure 9): one strictly parsed score per Q&A pair. Rated
   rows (training schema + ``rating``/``rating_raw``/``rating_model``) feed the selection model
   (``hf_medvlm.selection``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import zip_longest
from pathlib import Path

import numpy as np

from ..data.loading import iter_json_lines
from ..llm import ChatRequest
from .parsing import parse_score_line, parse_two_answer_turns
from .prompts import load_prompt_file
from .records import FigureRecord, conversation_rows, example_messages, figure_context, image_parts, record_rng
from .records import replies, training_row

__all__ = [
    "select_demonstration_candidates",
    "read_demonstrations",
    "generation_jobs",
    "generation_rows",
    "rating_jobs",
    "rating_rows",
    "candidate_jobs",
    "candidate_rows",
]


def select_demonstration_candidates(features: np.ndarray, num_clusters: int, num_samples: int, *,
                                    complexity: list[int] | None = None, seed: int = 0) -> tuple[list[int], np.ndarray]:
    """K-means on ``features`` then round-robin over clusters, so every cluster contributes (uniformly) until
    ``num_samples`` are picked. Within a cluster the most complex samples come first (``complexity``, e.g. the length
    of caption + mentions; the paper picks "relatively complex captions and inline mentions"). Returns the picked
    indices and the cluster labels."""
    from sklearn.cluster import KMeans

    if num_clusters < 1 or num_clusters > len(features):
        raise ValueError(f"num_clusters must be between 1 and the number of samples ({len(features)}), got {num_clusters}")
    labels = KMeans(n_clusters=num_clusters, random_state=seed, n_init=4).fit_predict(features)
    complexity = complexity if complexity is not None else [0] * len(features)
    queues = [sorted(np.nonzero(labels == k)[0].tolist(), key=lambda i: -complexity[i]) for k in range(num_clusters)]
    round_robin = [i for round_ in zip_longest(*queues) for i in round_ if i is not None]
    return round_robin[:num_samples], labels


def read_demonstrations(path: str | Path) -> dict[str, list[dict]]:
    """Clinician-selected demonstrations, JSONL ``{"context", "response", "modality"}`` -> grouped by modality."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"demonstrations file {path} does not exist")
    groups: dict[str, list[dict]] = defaultdict(list)
    for number, demo in iter_json_lines(path):
        missing = [key for key in ("context", "response", "modality") if not demo.get(key)]
        if missing:
            raise ValueError(f"{path}:{number}: demonstration lacks {', '.join(missing)}")
        groups[str(demo["modality"])].append(demo)
    if not groups:
        raise ValueError(f"demonstrations file {path} is empty")
    return dict(sorted(groups.items()))


def generation_jobs(records, demos, *, per_modality=2, seed=0, prompt_file="biomed_vital", temperature=0.0,
                    max_tokens=4096, model=None):
    """Figure 8 layout: system; demo context (user) -> demo transcript (assistant); query [image, context]."""
    system = load_prompt_file(prompt_file, ("generation_system",))["generation_system"]
    for record in records:
        rng = record_rng(seed, record.id, "demos")
        picked = [demo for pool in demos.values() for demo in rng.sample(pool, min(per_modality, len(pool)))]
        content = [*image_parts(record, 1), {"type": "text", "text": figure_context(record)}]
        messages = [{"role": "system", "content": system}, *example_messages(picked),
                    {"role": "user", "content": content}]
        yield record.id, ChatRequest(messages=messages, model=model, temperature=temperature, max_tokens=max_tokens)


def generation_rows(records, results: dict):
    return conversation_rows(records, results, source="biomed_vital_generated", with_context=True)


def candidate_jobs(records, *, prompt_file="biomed_vital", temperature=0.0, max_tokens=4096, model=None):
    """Section 3.1 annotation candidates: system (two answers per question); user [image, caption + context]."""
    system = load_prompt_file(prompt_file, ("candidates_system",))["candidates_system"]
    for record in records:
        content = [*image_parts(record, 1), {"type": "text", "text": figure_context(record)}]
        messages = [{"role": "system", "content": system}, {"role": "user", "content": content}]
        yield record.id, ChatRequest(messages=messages, model=model, temperature=temperature, max_tokens=max_tokens)


def candidate_rows(records, results: dict, *, generator: str = ""):
    """One row per question with its two answers, `{id, images, context, question, answer_1, answer_2, domain,
    generator}`: the input of `hf-medvlm select export-annotations`. Malformed rounds are counted by reason."""
    dropped_records, dropped_rounds, rows = Counter(), Counter(), []
    for record, text in replies(records, results, dropped_records):
        parsed = parse_two_answer_turns(text)
        dropped_rounds.update(parsed.drops)
        if not parsed.triples:
            dropped_records["no_rounds"] += 1
        for index, (question, first, second) in enumerate(parsed.triples):
            rows.append({"id": f"{record.id}-q{index}", "images": record.images[:1], "context": figure_context(record),
                         "question": question, "answer_1": first, "answer_2": second, "domain": record.domain,
                         "generator": generator})
    stats = {"records_in": len(records), "rows_out": len(rows), "dropped_records": dict(dropped_records),
             "dropped_rounds": dict(dropped_rounds)}
    return {"candidates": rows}, stats


def conversation_pairs(row: dict) -> list[tuple[str, str]]:
    """(question, answer) texts of a training-schema row."""
    texts = ["".join(b.get("text", "") for b in m["content"] if b.get("type") == "text") for m in row["messages"]]
    return list(zip(texts[0::2], texts[1::2]))


def rating_jobs(rows, *, prompt_file="biomed_vital", model=None, max_tokens=1024):
    """Figure 9 layout: system criteria; user [image, caption + mentions]; user [the Q&A pairs]."""
    system = load_prompt_file(prompt_file, ("rating_system",))["rating_system"]
    for row in rows:
        record = FigureRecord(id=row["id"], images=list(row["images"]), caption=row.get("context", ""))
        context = row.get("context") or ""
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": [*image_parts(record, 1), {"type": "text", "text": context}]},
            {"role": "user", "content": "\n\n".join(f"Question {i}: {q}\nAnswer {i}: {a}"
                                                     for i, (q, a) in enumerate(conversation_pairs(row), 1))},
        ]
        yield row["id"], ChatRequest(messages=messages, model=model, temperature=0.0, max_tokens=max_tokens)


def rating_rows(rows, results: dict, *, rating_model: str):
    """One output row per Q&A pair (image + that single turn), with ``rating`` (0-10 or None when the score line
    does not parse), ``rating_raw`` and ``rating_model``; unparseable replies are counted by reason, not guessed."""
    out, reasons = [], Counter()
    for row, text in replies(rows, results, reasons, key=lambda row: row["id"]):
        pairs = conversation_pairs(row)
        parsed = parse_score_line(text, len(pairs))
        if parsed.scores is None:
            reasons[parsed.reason] += 1
        record = FigureRecord(id=row["id"], images=list(row["images"]), caption="", domain=row.get("domain", ""),
                              modality=row.get("modality", ""), body_part=row.get("body_part", ""))
        for index, (question, answer) in enumerate(pairs):
            out.append(training_row(
                record, [(question, answer)], row_id=f"{row['id']}-qa{index}", source=row.get("source", ""),
                n_images=len(row["images"]), conversation_id=row["id"], turn_index=index,
                context=row.get("context", ""), rating=None if parsed.scores is None else parsed.scores[index],
                rating_raw=text, rating_model=rating_model,
            ))
    stats = {"conversations_in": len(rows), "rated_rows": sum(r["rating"] is not None for r in out),
             "unrated_rows": sum(r["rating"] is None for r in out), "unparsed_replies": dict(reasons)}
    return {"ratings": out}, stats
