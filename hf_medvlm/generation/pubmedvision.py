"""PubMedVision reformatting ("unblinded"): an MLLM sees the image(s) and the caption + inline mentions, under one
of ten sampled QA scenarios, and answers in JSON (Chen et al., 2024, Figure 4, Appendices C-D).

Each good reply yields two rows: Alignment VQA (a sampled single-/multi-image description question answered by
``Image_description``) and Instruction-Tuning VQA (``QA-query`` -> ``QA-answer``)."""

from __future__ import annotations

from collections import Counter

from ..llm import ChatRequest
from .parsing import parse_reformat_json
from .prompts import load_prompt_file
from .records import FigureRecord, image_parts, record_rng, replies, training_row

__all__ = ["reformat_jobs", "reformat_rows", "sample_scenario"]

REQUIRED = ("template", "scenarios", "single_image_questions", "multi_image_questions")


def sample_scenario(record: FigureRecord, prompt: dict, seed: int) -> dict:
    """One scenario per call, sampled uniformly (deterministic per record so a resumed run asks the same)."""
    return record_rng(seed, record.id, "scenario").choice(prompt["scenarios"])


def reformat_jobs(records, *, prompt_file="pubmedvision_reformat", seed=0, max_images=8, temperature=0.0,
                  max_tokens=2048, json_mode=True, model=None):
    prompt = load_prompt_file(prompt_file, REQUIRED)
    for record in records:
        scenario = sample_scenario(record, prompt, seed)
        context = "\n".join([record.caption, *record.mentions])
        text = prompt["template"].format(scenario_prompt=scenario["prompt"], contextual_text=context)
        content = [*image_parts(record, max_images), {"type": "text", "text": text}]
        yield record.id, ChatRequest(messages=[{"role": "user", "content": content}], model=model,
                                     temperature=temperature, max_tokens=max_tokens, json_mode=json_mode)


def reformat_rows(records, results: dict, *, prompt_file="pubmedvision_reformat", seed=0, max_images=8):
    """Returns ({"alignment": rows, "instruct": rows}, stats); rejected replies are counted by reason."""
    prompt = load_prompt_file(prompt_file, REQUIRED)
    rejected, scenarios, alignment, instruct, repaired = Counter(), Counter(), [], [], 0
    for record, text in replies(records, results, rejected):
        parsed = parse_reformat_json(text)
        if not parsed.ok:
            rejected[parsed.reason] += 1
            continue
        repaired += parsed.repaired
        n_images = min(len(record.images), max_images)
        pool = prompt["multi_image_questions"] if n_images > 1 else prompt["single_image_questions"]
        question = record_rng(seed, record.id, "alignment").choice(pool)
        scenario = sample_scenario(record, prompt, seed)["name"]
        scenarios[scenario] += 1
        alignment.append(training_row(record, [(question, parsed.image_description)], row_id=f"{record.id}-alignment",
                                      source="pubmedvision_alignment_vqa", n_images=n_images))
        instruct.append(training_row(record, [(parsed.qa_query, parsed.qa_answer)], row_id=f"{record.id}-instruct",
                                     source="pubmedvision_instruction_tuning_vqa", n_images=n_images,
                                     scenario=scenario))
    stats = {"records_in": len(records), "alignment_rows": len(alignment), "instruct_rows": len(instruct),
             "repaired_json": repaired, "rejected": dict(rejected), "scenarios": dict(scenarios)}
    return {"alignment": alignment, "instruct": instruct}, stats
