"""Generate answers on a medical VQA benchmark, score them under named protocols and write the results.

`run_evaluation(EvalArguments, ChatEndpointArguments)` is what `hf-medvlm eval` runs. Its files in `output_dir`
(`answers.jsonl`, resumable; `results.json`; `model_index.json`) and its multi-process layout (each process answers
its shard, the main process merges and scores) are described in docs/evaluation.md ("Outputs").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..outcome import check_failure_rate, failure_exit_code, failure_rate_field

__all__ = ["EvalArguments", "validate_args", "run_evaluation"]


@dataclass
class EvalArguments:
    output_dir: str = field(metadata={"help": "Folder for answers.jsonl, results.json and model_index.json."})
    dataset_name: str = field(metadata={
        "help": "Eval set in the eval schema: a Hub dataset id, a local Parquet folder, or a .parquet/.jsonl file."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Model to generate answers with; not needed with --answers_file."})
    task: str = field(
        default="vqa", metadata={"help": "'vqa' (open/closed questions, scored with each of --protocols), "
                                         "'multiple_choice' (HuatuoGPT-Vision prompt and letter matching), 'chat' "
                                         "(LLaVA-Med qa50, LLM-judged relative score) or 'win_rate' (BioMed-VITAL "
                                         "pairwise win rate against --answers_file_b, LLM-judged)."})
    benchmark_name: str = field(default="", metadata={"help": "Display name in results and the model card, e.g. "
                                                             "'VQA-RAD'; defaults to dataset_name."})
    dataset_type: str = field(default="", metadata={"help": "Hub id of the benchmark for the model card's model-index "
                                                           "(e.g. flaviagiammarino/vqa-rad); defaults to dataset_name."})
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset config name (load_dataset name=)."})
    dataset_split: str = field(default="test", metadata={"help": "Split to evaluate."})
    image_dir: str | None = field(default=None, metadata={"help": "Folder that relative image paths are resolved "
                                                                 "against, when the dataset stores paths."})
    max_samples: int | None = field(default=None, metadata={"help": "Evaluate only the first N questions."})
    protocols: list[str] = field(default_factory=lambda: ["llava_med", "strict"],
                                 metadata={"help": "VQA scoring protocols: llava_med (paper parity) and/or strict."})
    question_template: str = field(default="{question}", metadata={
        "help": "Python format string turning a record's question into the prompt text, e.g. "
                "'{question} Answer with yes or no.'"})
    answers_file: str | None = field(default=None, metadata={
        "help": "Score this existing answers JSONL instead of generating; its ids must match the questions exactly."})
    answers_file_b: str | None = field(default=None, metadata={
        "help": "win_rate: the answers JSONL of the model compared against (B); ids must match the questions."})
    model_b_name: str = field(default="B", metadata={"help": "win_rate: display name of the model behind "
                                                             "answers_file_b."})
    on_missing_image: str = field(default="raise", metadata={
        "help": "'raise' stops at a record whose image is missing; 'skip' leaves it out and counts it in results."})
    batch_size: int = field(default=16, metadata={"help": "Questions per generate() call (per process)."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Generation limit; generation also stops at EOS."})
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy decoding (not deterministic)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature when do_sample is set."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, float32, bfloat16 or float16."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow checkpoints that ship their own code."})
    save_every: int = field(default=64, metadata={"help": "Append answers to disk every N questions (resume unit)."})
    # A tenth of a benchmark left out or unjudged makes its number incomparable with published ones.
    max_failure_rate: float = failure_rate_field(
        0.1, "questions (left out for a missing image under --on_missing_image skip, or not judged because the judge "
             "request failed or its verdict did not parse)")
    endpoint_base_url: str | None = field(default=None, metadata={
        "help": "Generate the answers through this OpenAI-compatible chat endpoint (e.g. http://localhost:8000/v1 of "
                "`vllm serve`) instead of a local generate(); model_name_or_path is then the served model name. "
                "Images go as base64 PNG data URLs; scoring and output files are the same."})
    endpoint_api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "Environment variable holding the answer endpoint's API key (a server without keys needs none)."})
    endpoint_concurrency: int = field(default=16, metadata={"help": "Requests in flight at once to endpoint_base_url."})
    endpoint_cache_dir: str | None = field(default=None, metadata={
        "help": "On-disk reply cache of the answer endpoint, shared across output folders; resuming within one "
                "output_dir needs no cache (answers.endpoint.jsonl)."})


def validate_args(args: EvalArguments) -> None:
    """Settings that cannot work together, as one clear error before any model is loaded."""
    from .metrics import PROTOCOLS

    if args.task not in ("vqa", "multiple_choice", "chat", "win_rate"):
        raise ValueError(f"task must be 'vqa', 'multiple_choice', 'chat' or 'win_rate', got {args.task!r}")
    if args.task == "win_rate" and not args.answers_file_b:
        raise ValueError("task 'win_rate' needs answers_file_b (the answers of the model compared against)")
    unknown = [p for p in args.protocols if p not in PROTOCOLS]
    if unknown or not args.protocols:
        raise ValueError(f"protocols must be a non-empty subset of {PROTOCOLS}, got {args.protocols!r}")
    if args.on_missing_image not in ("raise", "skip"):
        raise ValueError(f"on_missing_image must be 'raise' or 'skip', got {args.on_missing_image!r}")
    if args.model_name_or_path is None and args.answers_file is None:
        raise ValueError("give model_name_or_path (to generate answers) or answers_file (to score existing ones)")
    check_failure_rate(args.max_failure_rate)
    if args.endpoint_base_url and not args.model_name_or_path:
        raise ValueError("endpoint_base_url needs model_name_or_path: the model name the endpoint serves")


def load_model(args: EvalArguments, device):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import hf_medvlm  # noqa: F401 - registers LlavaMed with the Auto classes

    from ..hub import check_source

    # A model that is neither local nor on the Hub is one sentence now, not after the loaders' retries.
    check_source(args.model_name_or_path, "model", what="model_name_or_path")
    dtype = "auto" if args.dtype == "auto" else getattr(torch, args.dtype)
    model = AutoModelForImageTextToText.from_pretrained(
        args.model_name_or_path, dtype=dtype, trust_remote_code=args.trust_remote_code).to(device).eval()
    processor = AutoProcessor.from_pretrained(args.model_name_or_path, trust_remote_code=args.trust_remote_code)
    return model, processor


def generate_missing(args, questions, answers_path: Path, state) -> None:
    """Answer the questions not yet in the answers files; each process its shard, appended as it goes."""
    from .benchmark import append_answers, read_answers, shard
    from .generation import GenerationSettings, generate_answers

    part_path = answers_path.parent / f"answers.rank{state.process_index}.jsonl"
    done = read_answers(answers_path)
    for part in answers_path.parent.glob("answers.rank*.jsonl"):
        # A torn last line is cut off in this process's own file only: another rank may be appending to its file.
        done.update(read_answers(part, repair=part == part_path))
    todo = [q for q in questions if q.id not in done]
    if args.endpoint_base_url:  # one client with many requests in flight; other processes have nothing to do
        if todo and state.is_main_process:
            from .endpoint import generate_with_endpoint

            generate_with_endpoint(args, todo, part_path)  # merged into answers.jsonl like a local rank's file
        return
    todo = shard(todo, state.process_index, state.num_processes)
    if not todo:
        return
    from tqdm.auto import tqdm

    model, processor = load_model(args, state.device)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                  do_sample=args.do_sample, temperature=args.temperature)
    with tqdm(total=len(todo), desc=f"answering (rank {state.process_index})") as bar:
        for start in range(0, len(todo), args.save_every):
            chunk = todo[start : start + args.save_every]
            texts = generate_answers(model, processor, [q.prompt for q in chunk], [q.load_images() for q in chunk],
                                     settings, progress=False)
            append_answers(part_path, [dict(question_id=q.id, prompt=q.prompt, text=t,
                                            model_id=args.model_name_or_path) for q, t in zip(chunk, texts)])
            bar.update(len(chunk))


def merge_answers(questions, answers_path: Path) -> dict[str, dict]:
    """Fold the per-process files into answers.jsonl, in question order (main process only)."""
    from ..files import atomic_write_text
    from .benchmark import read_answers

    answers = read_answers(answers_path)
    parts = sorted(answers_path.parent.glob("answers.rank*.jsonl"))
    for part in parts:
        answers.update(read_answers(part))
    ordered = [answers[q.id] for q in questions if q.id in answers]
    extra = [record for key, record in answers.items() if key not in {q.id for q in questions}]
    atomic_write_text(answers_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ordered + extra))
    for part in parts:  # a kill before these are gone leaves answers twice over, which the next merge folds again
        part.unlink()
    return answers


def format_table(scores: dict, benchmark: str) -> str:
    lines = [f"{benchmark}: every number names its protocol (percent)"]
    for protocol, result in scores.items():
        if protocol == "llava_med_qa50":
            overall = result["overall"]
            lines.append(f"  {protocol:<10} relative_score {overall['relative_score']} (n={overall['n']}, "
                         f"unparseable={result['unparseable']['count']})")
        elif protocol == "biomed_vital_win_rate":
            lines.append(f"  {protocol:<10} win_rate {result['win_rate']} (wins={result['wins']}, "
                         f"ties={result['ties']} of which inconsistent={result['inconsistent']}, losses={result['losses']}, "
                         f"unparseable={result['unparseable']['count']})")
        else:
            lines += [f"  {protocol:<10} {key:<24} {value:8.2f}" for key, value in result.items()
                      if isinstance(value, float)]
            counts = ", ".join(f"{k}={v}" for k, v in result.items() if isinstance(v, int))
            lines.append(f"  {protocol:<10} counts: {counts}")
    return "\n".join(lines)


def judge_scores(args, endpoint, questions, answers, output_dir: Path) -> dict:
    """qa50 relative score or pairwise win rate from the LLM judge (`hf_medvlm.eval.judge`)."""
    from .benchmark import read_answers
    from .judge import score_chat, win_rate

    backend = endpoint.build_backend()
    rows = [q.row for q in questions]
    texts = {q.id: str(answers[q.id]["text"]) for q in questions}
    if args.task == "chat":
        return {"llava_med_qa50": score_chat(rows, texts, backend, output_dir, concurrency=endpoint.llm_concurrency)}
    other = {k: str(v["text"]) for k, v in read_answers(Path(args.answers_file_b)).items()}
    summary = win_rate(rows, texts, other, backend, output_dir, model_a=args.model_name_or_path or "A",
                       model_b=args.model_b_name, concurrency=endpoint.llm_concurrency)
    return {"biomed_vital_win_rate": summary}


def run_evaluation(args: EvalArguments, endpoint) -> int:
    """Questions -> answers (given, or generated and resumed) -> scores -> results files; returns an exit code.

    `endpoint` (`hf_medvlm.llm.ChatEndpointArguments`) configures the LLM judge of the chat and win-rate tasks.
    """
    from accelerate import PartialState

    from ..hub import check_source
    from .benchmark import check_answer_ids, load_eval_dataset, questions_from_dataset, read_answers, score_answers

    check_source(args.dataset_name, "dataset", what="dataset_name")  # one sentence now, not after the retries
    state = PartialState()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    answers_path = output_dir / "answers.jsonl"

    # ---- questions
    dataset = load_eval_dataset(args.dataset_name, args.dataset_config, args.dataset_split)
    # The qa50 judge reads text only, so scoring an existing answers file needs no images (a `--text_only` qa50 set).
    questions, skipped = questions_from_dataset(dataset, args.task, args.question_template, args.on_missing_image,
                                                args.image_dir, args.max_samples,
                                                require_images=not (args.task == "chat" and args.answers_file))
    if not questions:
        raise ValueError(f"{args.dataset_name}: no questions to evaluate (skipped: {dict(skipped)})")

    # ---- answers: given, or generated (resuming whatever is already on disk)
    if not args.answers_file:
        if state.is_main_process:
            check_answer_ids(read_answers(answers_path), questions, str(answers_path), complete=False)
        generate_missing(args, questions, answers_path, state)
        state.wait_for_everyone()
    if not state.is_main_process:
        return 0
    answers = read_answers(Path(args.answers_file)) if args.answers_file else merge_answers(questions, answers_path)
    check_answer_ids(answers, questions, args.answers_file or str(answers_path), complete=True)

    # ---- scores, results, model-index
    if args.task in ("chat", "win_rate"):
        scores = judge_scores(args, endpoint, questions, answers, output_dir)
    else:
        scores = score_answers(questions, answers, args.task, args.protocols)
    benchmark = args.benchmark_name or args.dataset_name
    results = dict(benchmark=benchmark, dataset=args.dataset_name, dataset_config=args.dataset_config,
                   split=args.dataset_split, task=args.task, model=args.model_name_or_path,
                   num_questions=len(questions), skipped=dict(skipped), scores=scores, config=asdict(args),
                   questions_without_image=sum(not q.images for q in questions))
    written = write_results(output_dir, results, args)
    print(format_table(scores, benchmark))
    if skipped:
        print(f"skipped records: {dict(skipped)}")
    if not args.answers_file:
        written.insert(0, answers_path)
    print(f"wrote {', '.join(str(path) for path in written)}")
    judged = [scores[protocol] for protocol in JUDGE_FILES if protocol in scores]
    # Failed: left out for a missing image, or given no usable verdict by the LLM judge.
    failed = skipped.get("missing_image", 0) + sum(result["unparseable"]["count"] for result in judged)
    return failure_exit_code("eval", failed, len(questions) + skipped.get("missing_image", 0),
                             args.max_failure_rate, "questions", details=f"counts in {output_dir / 'results.json'}",
                             failed_requests=sum(result["run"]["failed"] for result in judged))


JUDGE_FILES = {"llava_med_qa50": ("chat_judgements.jsonl", "chat_scores.json"),
               "biomed_vital_win_rate": ("win_rate_judgements.jsonl", "win_rate.json")}


def write_results(output_dir: Path, results: dict, args: EvalArguments) -> list[Path]:
    """results.json and model_index.json, each complete or absent; returns every file this scoring wrote."""
    from ..files import atomic_write_text
    from .benchmark import model_index_entries

    results_path, index_path = output_dir / "results.json", output_dir / "model_index.json"
    entries = model_index_entries(results["scores"], dataset_type=args.dataset_type or args.dataset_name,
                                  dataset_name=results["benchmark"], dataset_config=args.dataset_config,
                                  dataset_split=args.dataset_split)
    atomic_write_text(index_path, json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
    # Last: results.json marks a finished evaluation (`report` reads it), so nothing it goes with may still be missing.
    atomic_write_text(results_path, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    judged = [output_dir / name for protocol in results["scores"] for name in JUDGE_FILES.get(protocol, ())]
    return [*judged, results_path, index_path]
