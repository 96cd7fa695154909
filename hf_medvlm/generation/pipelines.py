"""Data-generation methods run end to end (the work behind `hf-medvlm generate <method>`; the methods are the keys of
`METHOD_TITLES`, plus `select-demos`). A rerun resumes from ``<output_dir>/responses.jsonl`` (`hf_medvlm.llm.runner`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write_text
from ..llm import read_results, run_requests
from ..outcome import failure_rate_field

__all__ = ["PAPER_GENERATORS", "GenerateArguments", "chat_backend", "run_method", "select_demos",
           "write_generation_card"]

# method -> (the generator model the paper used, where it says so). Recipes under recipes/*/generate/ set these.
PAPER_GENERATORS = {
    "llava-med": ("gpt-4-0314", "LLaVA-Med, Appendix B.2: GPT-4 through Azure; v1.0.0's code targets api-version "
                                "2023-03-15-preview, when GPT-4 was gpt-4-0314"),
    "pubmedvision": ("gpt-4-turbo-2024-04-09", "PubMedVision, Section 3.2"),
    "image-labels": ("gpt-4-turbo-2024-04-09", "PubMedVision, Appendix B: GPT4-Vision labels; the version of its "
                                               "Section 3.2 reformatter"),
    "biomed-vital": ("gpt-4-vision-preview", "BioMed-VITAL, Section 4.1"),
    "biomed-vital-candidates": ("gpt-4-vision-preview", "BioMed-VITAL, Sections 3.1 and 4.1"),
    "rate": ("gpt-4-vision-preview", "BioMed-VITAL, Sections 3.2 and 4.1"),
}
METHOD_TITLES = {
    "llava-med": "LLaVA-Med self-instruct conversations (Li et al., 2023, Figures 4-5)",
    "pubmedvision": "PubMedVision Alignment and Instruction-Tuning VQA (Chen et al., 2024, Figure 4)",
    "image-labels": "Medical / non-medical image labels for PubMedVision's image classifier (Chen et al., 2024, "
                    "Appendix B)",
    "biomed-vital": "BioMed-VITAL instruction-following conversations (Cui et al., 2024, Figure 8)",
    "biomed-vital-candidates": "BioMed-VITAL questions with two candidate answers for clinician annotation (Cui et "
                               "al., 2024, Section 3.1)",
    "rate": "BioMed-VITAL model-based ratings with the clinician-curated criteria (Cui et al., 2024, Figure 9)",
}


@dataclass
class GenerateArguments:
    input: str = field(metadata={"help": "Figure records JSONL (id, images, caption, mentions, ...); for `rate`, "
                                         "the conversations JSONL written by `generate biomed-vital`."})
    output_dir: str = field(metadata={"help": "Folder for responses.jsonl, data/*.jsonl and report.json."})
    image_root: str | None = field(default=None, metadata={"help": "Folder that relative image paths resolve "
                                                                    "against (default: the input file's folder)."})
    local_model: str | None = field(default=None, metadata={"help": "Run a local transformers model (path or Hub "
                                                                     "id) instead of an HTTP endpoint."})
    max_new_tokens: int = field(default=4096, metadata={"help": "Reply length limit (BioMed-VITAL's generator used "
                                                                 "max_tokens=4096)."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (0 = greedy)."})
    seed: int = field(default=0, metadata={"help": "Seed of every per-record choice (scenario, question, demos)."})
    limit: int | None = field(default=None, metadata={"help": "Only the first N records (for a dry run)."})
    with_mentions: bool = field(default=True, metadata={"help": "llava-med: include inline mentions (60K-IM)."})
    prompt_file: str | None = field(default=None, metadata={"help": "A YAML prompt file replacing the packaged one."})
    turn_filters: str = field(default="llava_med_turn_filters", metadata={"help": "llava-med: turn post-filter "
                                                                                  "YAML (reason -> phrases)."})
    demonstrations: str | None = field(default=None, metadata={"help": "biomed-vital: clinician-selected demos "
                                                                        "JSONL (context, response, modality)."})
    demos_per_modality: int = field(default=2, metadata={"help": "biomed-vital: demos sampled per modality per call "
                                                                  "(paper: 2; released code: 1)."})
    num_clusters: int = field(default=60, metadata={"help": "select-demos: K-means clusters (code: 60)."})
    num_samples: int = field(default=120, metadata={"help": "select-demos: candidates to pick across clusters."})
    text_model: str = field(default="sentence-transformers/all-mpnet-base-v2",
                            metadata={"help": "select-demos: sentence-transformers model for caption + mentions."})
    image_encoder: str | None = field(default=None, metadata={"help": "select-demos: CLIP vision encoder whose "
                                                                       "pooled features are joined to the text ones."})
    # The turn filters drop some conversations by design; a fifth of the records with nothing is a broken prompt,
    # model or parser, not filtering.
    max_failure_rate: float = failure_rate_field(
        0.2, "input records (conversations, for rate) that yielded no row: no reply, a reply that did not parse, or "
             "no turn left after the filters")
    card_license: str = field(default="cc-by-nc-4.0", metadata={"help": "Licence written into the data card "
                                                                        "(data/README.md); the input data's licences "
                                                                        "and the generator's terms apply."})


def chat_backend(args: GenerateArguments, endpoint):
    """The local transformers model of `--local_model`, else the endpoint's OpenAI-compatible backend."""
    if args.local_model:
        from hf_medvlm.llm.local import LocalChatBackend

        return LocalChatBackend.from_pretrained(args.local_model, max_new_tokens=args.max_new_tokens)
    env = "AZURE_OPENAI_ENDPOINT" if endpoint.llm_api_style == "azure" else "OPENAI_BASE_URL"
    if not (endpoint.llm_base_url or os.environ.get(env)):
        raise ValueError(f"give --llm_base_url (an OpenAI-compatible endpoint; default ${env}) or --local_model")
    return endpoint.build_backend()


def run_method(method: str, args: GenerateArguments, backend, concurrency: int = 8, progress: bool = True) -> dict:
    """Run one method end to end; returns the report (also written to ``<output_dir>/report.json``). The outputs go
    to ``<output_dir>/data/*.jsonl`` with a dataset card (``data/README.md``) naming the generator model."""
    from ..data.loading import read_jsonl_rows
    from .records import read_figure_records, write_jsonl

    out = Path(args.output_dir)
    responses = out / "responses.jsonl"
    model_name = getattr(backend, "name", "")
    read = read_jsonl_rows if method == "rate" else read_figure_records  # rate reads generated conversations
    inputs = read(args.input, args.image_root)[: args.limit or None]
    run = run_requests(_jobs(method, args, inputs), backend, output_path=responses, concurrency=concurrency,
                       desc=method, progress=progress)
    # report.json, written last, marks a finished run: an earlier run's must not stand beside this run's data files.
    (out / "report.json").unlink(missing_ok=True)
    outputs, stats = _outputs(method, args, inputs, read_results(responses), model_name, out / "data")
    counts = {name: write_jsonl(out / "data" / f"{name}.jsonl", rows) for name, rows in outputs.items()}
    write_generation_card(out / "data", method, model_name, counts, license=args.card_license)
    failed, total = _failed_items(method, stats)
    report = {"method": method, "backend": model_name, "generator_model": model_name,
              "paper_generator_model": PAPER_GENERATORS[method][0], "requests": run.to_dict(), "parsing": stats,
              "written": counts, "failed": {"count": failed, "of": total}}
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _failed_items(method: str, stats: dict) -> tuple[int, int]:
    """(items that yielded no row, items in): input records, images for `image-labels`, conversations for `rate`."""
    if method == "rate":
        return sum(stats["unparsed_replies"].values()), stats["conversations_in"]
    if method == "image-labels":
        return stats["images_in"] - stats["labelled"], stats["images_in"]
    produced = stats["instruct_rows"] if method == "pubmedvision" else stats["rows_out"]
    return stats["records_in"] - produced, stats["records_in"]


def _jobs(method: str, args: GenerateArguments, inputs: list):
    from . import biomed_vital, llava_med, pubmedvision

    prompt = {"prompt_file": args.prompt_file} if args.prompt_file else {}  # unset: each method's packaged file
    common = dict(temperature=args.temperature, max_tokens=args.max_new_tokens, **prompt)
    if method == "rate":
        return biomed_vital.rating_jobs(inputs, max_tokens=args.max_new_tokens, **prompt)
    if method == "llava-med":
        return llava_med.self_instruct_jobs(inputs, with_mentions=args.with_mentions, **common)
    if method == "pubmedvision":
        return pubmedvision.reformat_jobs(inputs, seed=args.seed, **common)
    if method == "image-labels":
        return pubmedvision.labelling_jobs(inputs, **common)
    if method == "biomed-vital-candidates":
        return biomed_vital.candidate_jobs(inputs, **common)
    if not args.demonstrations:
        raise ValueError("generate biomed-vital needs --demonstrations (JSONL of context/response/modality)")
    demos = biomed_vital.read_demonstrations(args.demonstrations)
    return biomed_vital.generation_jobs(inputs, demos, per_modality=args.demos_per_modality, seed=args.seed, **common)


def _outputs(method: str, args: GenerateArguments, inputs: list, results: dict, model_name: str, data_dir: Path):
    """{output name: rows} and the parsing stats of one method."""
    from . import biomed_vital, llava_med, pubmedvision

    if method == "llava-med":
        return llava_med.self_instruct_rows(inputs, results, turn_filters=args.turn_filters)
    if method == "pubmedvision":
        prompt = {"prompt_file": args.prompt_file} if args.prompt_file else {}
        return pubmedvision.reformat_rows(inputs, results, seed=args.seed, **prompt)
    if method == "image-labels":
        return pubmedvision.label_rows(inputs, results, data_dir / "labels.jsonl", label_model=model_name)
    if method == "biomed-vital-candidates":
        return biomed_vital.candidate_rows(inputs, results, generator=model_name)
    if method == "biomed-vital":
        return biomed_vital.generation_rows(inputs, results)
    return biomed_vital.rating_rows(inputs, results, rating_model=model_name)


def write_generation_card(folder: Path, method: str, generator: str, counts: dict[str, int], *, license: str) -> Path:
    """A dataset card for the JSONL outputs of one method: which model produced them, and which the paper used."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from ..data.card import write_dataset_card

    paper_model, where = PAPER_GENERATORS[method]
    configs = [{"config_name": name, "data_files": [{"split": "train", "path": f"{name}.jsonl"}]} for name in counts]
    DatasetCard(f"---\n{DatasetCardData(configs=configs).to_yaml()}\n---\n").save(folder / "README.md")
    written = ", ".join(f"`{name}` {n} rows" for name, n in counts.items())
    return write_dataset_card(
        folder, license=license, pretty_name=f"hf-medvlm generate {method}",
        summary=f"{METHOD_TITLES[method]}, generated by **`{generator}`** with `hf-medvlm generate {method}`. "
                f"The paper used `{paper_model}` ({where}).",
        provenance=[f"Generator model: `{generator}`.", f"Paper's generator model: `{paper_model}` ({where}).",
                    "Input figures and text: the records given to `--input`; their own licences apply, and so do the "
                    "terms of the generator's provider."],
        how_built=f"`hf-medvlm generate {method}` (hf_medvlm.generation). Written: {written}. Every request and reply "
                  "is in `../responses.jsonl`; parsing drops are counted in `../report.json`.",
        license_details="Set with `--card_license`; check the licences of the input data and the generator's terms.",
        research_only=license.startswith("cc-by-nc"),
    )


def select_demos(args: GenerateArguments) -> dict:
    """BioMed-VITAL demonstration candidates: embed caption+mentions (and images), K-means, sample across clusters."""
    import numpy as np

    from .biomed_vital import select_demonstration_candidates
    from .filtering import embed_captions
    from .records import figure_context, read_figure_records, write_jsonl

    records = read_figure_records(args.input, args.image_root)
    contexts = [figure_context(r) for r in records]
    features = embed_captions(contexts, args.text_model)
    if args.image_encoder:
        features = np.concatenate([features, _image_features(records, args.image_encoder)], axis=1)
    complexity = [len(r.caption) + sum(len(m) for m in r.mentions) for r in records]
    picked, labels = select_demonstration_candidates(features, args.num_clusters, args.num_samples,
                                                     complexity=complexity, seed=args.seed)
    # Each row is also a figure record, so `generate biomed-vital-candidates` can read this file as its input.
    rows = [_candidate_row(records[i], int(labels[i]), contexts[i]) for i in picked]
    written = write_jsonl(Path(args.output_dir) / "demonstration_candidates.jsonl", rows)
    report = {"method": "select-demos", "records_in": len(records), "clusters": args.num_clusters, "picked": written}
    atomic_write_text(Path(args.output_dir) / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _candidate_row(record, cluster: int, context: str) -> dict:
    return {"id": record.id, "cluster": cluster, "images": [str(Path(x).resolve()) for x in record.images],
            "caption": record.caption, "mentions": record.mentions, "fig_label": record.fig_label,
            "context": context, "domain": record.domain}


def _image_features(records, encoder_path: str):
    """L2-normalised pooled CLIP features of each record's first image."""
    import numpy as np
    import torch
    from transformers import AutoImageProcessor

    from .image_classifier import MedicalImageClassifier, image_features

    model = MedicalImageClassifier.from_vision_encoder(encoder_path)  # its frozen encoder; the head goes unused
    pooled = image_features(model, AutoImageProcessor.from_pretrained(encoder_path), [r.images[0] for r in records])
    return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)
