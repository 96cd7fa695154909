"""The papers' tables from `results.json` files, with the published numbers beside yours: `hf-medvlm report`.

`run_report(ReportArguments)` reads the `results.json` files that `hf-medvlm eval` wrote, maps each to a benchmark,
puts your numbers beside the papers' (`published_results.yaml`, every value with its source) and writes `report.md`,
one CSV per table and a bar chart `report.png` (`hf_medvlm.eval.report_render`). How a results.json is mapped (its
`task` picks the table; `benchmark`, `dataset` or `config.dataset_type` names the benchmark through
`BENCHMARK_PREFIXES`) is documented in docs/evaluation.md. A file that maps to nothing, or to a benchmark its table has
no column for, is listed with the reason and left out; when no file can be used the report fails.
"""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = [
    "TABLES",
    "BENCHMARKS",
    "BENCHMARK_PREFIXES",
    "PUBLISHED_PATH",
    "ReportArguments",
    "Row",
    "InputFile",
    "benchmark_of",
    "identify_benchmark",
    "find_results_files",
    "read_results",
    "rows_from_results",
    "merge_rows",
    "load_published",
    "build_tables",
    "run_report",
]

PUBLISHED_PATH = Path(__file__).parent / "published_results.yaml"

BENCHMARKS = {"vqa_rad": "VQA-RAD", "slake": "SLAKE", "path_vqa": "PathVQA", "pmc_vqa": "PMC-VQA",
              "omnimedvqa": "OmniMedVQA", "mmmu_med": "MMMU-Med", "qa50": "LLaVA-Med qa50"}
# Normalised-name prefix -> benchmark id. Names seen: recipe `benchmark_name`s (VQA-RAD, PathVQA, LLaVA-Med qa50),
# `prepare` folders (data/vqa_rad, data/path_vqa), Hub ids (flaviagiammarino/vqa-rad, BoKelvin/SLAKE,
# xmcmic/PMC-VQA, microsoft/LLaVA-Med-qa50) and Medical_Multimodal_Evaluation_Data `dataset` values
# (VQA-RAD_test, PMC-VQA_test, OmniMedVQA, MMMU_Medical_Validation).
BENCHMARK_PREFIXES = {"vqarad": "vqa_rad", "slake": "slake", "pathvqa": "path_vqa", "pmcvqa": "pmc_vqa",
                      "omnimedvqa": "omnimedvqa", "mmmumed": "mmmu_med", "mmmuhealth": "mmmu_med",
                      "llavamedqa50": "qa50", "llavamedevalqa50": "qa50", "qa50": "qa50"}

# table -> (title, [(column key, header)]); published_results.yaml uses the same column keys.
TABLES = {
    "vqa": ("VQA-RAD / SLAKE / PathVQA, open and closed questions (%, LLaVA-Med style)",
            [(f"{b}_{kind}", f"{BENCHMARKS[b]} {kind}") for b in ("vqa_rad", "slake", "path_vqa")
             for kind in ("open", "closed")]),
    "multiple_choice": ("Multiple-choice accuracy by dataset (%, HuatuoGPT-Vision style)",
                        [(b, BENCHMARKS[b]) for b in ("vqa_rad", "slake", "path_vqa", "pmc_vqa", "omnimedvqa")]
                        + [("mmmu_med", "MMMU-Med (val)")]),
    "qa50": ("LLaVA-Med qa50 visual chat, relative score by question type and domain (%, LLaVA-Med Table 3 style)",
             [("conversation", "conversation"), ("description", "description"), ("cxr", "CXR"), ("mri", "MRI"),
              ("histology", "histology"), ("gross", "gross"), ("ct", "CT"), ("overall", "overall")]),
    "win_rate": ("Pairwise win rate with the reference answer (%, BioMed-VITAL style)",
                 [(b, BENCHMARKS[b]) for b in ("vqa_rad", "slake", "path_vqa")] + [("best", "best")]),
}
TASK_TABLES = {"vqa": "vqa", "multiple_choice": "multiple_choice", "chat": "qa50", "win_rate": "win_rate"}
# table -> the benchmarks it has columns for
TABLE_BENCHMARKS = {"vqa": ("vqa_rad", "slake", "path_vqa"),
                    "multiple_choice": ("vqa_rad", "slake", "path_vqa", "pmc_vqa", "omnimedvqa", "mmmu_med"),
                    "qa50": ("qa50",), "win_rate": ("vqa_rad", "slake", "path_vqa")}
# protocol -> (open metric, closed metric) as results.json names them
VQA_METRICS = {"llava_med": ("open_recall", "closed_accuracy"), "strict": ("open_exact_match", "closed_accuracy")}
# qa50 column -> (results.json group, key in it); None: the overall score
QA50_GROUPS = {"conversation": ("by_type", "conversation"), "description": ("by_type", "detailed_description"),
               "cxr": ("by_domain", "chest_xray"), "mri": ("by_domain", "mri"),
               "histology": ("by_domain", "histology"), "gross": ("by_domain", "gross"),
               "ct": ("by_domain", "ct_scan"), "overall": ("overall", None)}


@dataclass
class ReportArguments:
    results: list[str] = field(metadata={
        "help": "results.json files written by `hf-medvlm eval`, folders (searched recursively for results.json) "
                "or quoted glob patterns such as 'runs/**/results.json'."})
    output_dir: str = field(metadata={"help": "Folder for report.md, one CSV per table and report.png."})
    chart: bool = field(default=True, metadata={
        "help": "Write the bar chart report.png (needs matplotlib: pip install 'hf_medvlm[report]')."})


@dataclass
class Row:
    """One table row: your run (`kind="yours"`, sources are results.json paths) or a published one."""

    table: str
    model: str
    protocol: str
    values: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # column -> results.json path or published source id
    kind: str = "yours"
    setting: str = ""
    judge: str = ""
    note: str = ""
    verified: bool = True
    chart: bool = True


@dataclass
class InputFile:
    """What became of one results.json: the benchmarks it filled, or why it was left out."""

    path: Path
    task: str = ""
    model: str = ""
    num_questions: int | None = None
    skipped_records: dict = field(default_factory=dict)
    used_as: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# --- inputs ----------------------------------------------------------------------------------------------------------


def _files_in(path: Path) -> list[Path]:
    return sorted(path.rglob("results.json")) if path.is_dir() else [path]


def find_results_files(specs: list[str]) -> list[Path]:
    """results.json paths from file paths, folders (recursive) and glob patterns, in order, each once."""
    found: list[Path] = []
    for spec in specs:
        if Path(spec).exists():
            matches = _files_in(Path(spec))
        elif glob.has_magic(spec):
            matches = [f for hit in sorted(glob.glob(spec, recursive=True)) for f in _files_in(Path(hit))]
        else:
            raise FileNotFoundError(f"{spec}: no such file or folder")
        if not matches:
            raise FileNotFoundError(f"{spec}: matches no results.json")
        found += [m for m in matches if m not in found]
    return found


def read_results(path: Path) -> dict:
    """A results.json as a dict; a file that is not one is an error naming the file and what is wrong."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None
    if not isinstance(results, dict):
        raise ValueError(f"{path}: holds a JSON {type(results).__name__}, not the object `hf-medvlm eval` writes")
    for key, kind in (("task", str), ("scores", dict)):
        if not isinstance(results.get(key), kind):
            raise ValueError(f"{path}: field {key!r} is missing or not a {kind.__name__}; is it a results.json "
                             "written by `hf-medvlm eval`?")
    return results


def benchmark_of(name: str) -> str | None:
    """The benchmark whose `BENCHMARK_PREFIXES` prefix starts the name's last path component, with a data-file
    extension dropped, in lower-case letters and digits only."""
    last = re.split(r"[\\/]", str(name).strip().rstrip("/\\"))[-1]
    last = re.sub(r"\.(jsonl?|parquet|csv)$", "", last, flags=re.IGNORECASE)
    key = re.sub(r"[^a-z0-9]", "", last.lower())
    return next((bench for prefix, bench in BENCHMARK_PREFIXES.items() if key.startswith(prefix)), None)


def identify_benchmark(results: dict) -> tuple[str | None, str]:
    """(benchmark id or None, what decided it): the first of benchmark, dataset, config.dataset_type that maps."""
    named = [("benchmark", results.get("benchmark")), ("dataset", results.get("dataset")),
             ("dataset_type", (results.get("config") or {}).get("dataset_type"))]
    named = [(key, value) for key, value in named if value]
    for key, value in named:
        if bench := benchmark_of(value):
            return bench, f"{key} {value!r}"
    tried = ", ".join(f"{key} {value!r}" for key, value in named) or "no benchmark, dataset or dataset_type field"
    return None, f"names no known benchmark ({tried})"


# --- your rows -------------------------------------------------------------------------------------------------------


def _table_benchmark(results: dict, table: str, problems: list[str]) -> str | None:
    bench, why = identify_benchmark(results)
    if bench not in TABLE_BENCHMARKS[table]:
        problems.append(why if bench is None else f"{BENCHMARKS[bench]} has no column in the {table} table")
        return None
    return bench


def _mc_values(results: dict, problems: list[str]) -> dict[str, float]:
    scores = results["scores"].get("huatuo_mc") or {}
    groups = scores.get("accuracy_by_group") or {}
    # Per-dataset accuracies only: `<dataset>_<subset>` groups (compute_mc_metrics adds both) are left out.
    groups = {name: acc for name, acc in groups.items()
              if not any(name.startswith(other + "_") for other in groups if other != name)}
    if not groups:
        bench = _table_benchmark(results, "multiple_choice", problems)
        return {} if bench is None else {bench: scores.get("accuracy")}
    values: dict[str, float] = {}
    for name, accuracy in groups.items():
        bench = benchmark_of(name)
        if bench not in TABLE_BENCHMARKS["multiple_choice"]:
            problems.append(f"dataset group {name!r} names no benchmark of the multiple_choice table")
        elif bench in values:
            problems.append(f"dataset groups map to {BENCHMARKS[bench]} twice (accuracies cannot be pooled "
                            f"without counts); {name!r} left out")
        else:
            values[bench] = accuracy
    return values


def _qa50_values(summary: dict) -> dict[str, float]:
    values = {}
    for column, (group, key) in QA50_GROUPS.items():
        scores = summary.get(group) or {}
        scores = scores if key is None else scores.get(key) or {}
        values[column] = scores.get("relative_score")
    return values


def _score_sets(results: dict, table: str, label: str, problems: list[str]) -> list[tuple[str, str, dict, str]]:
    """(model label, protocol, {column: value or None}, judge) of each row a results.json gives its table."""
    if table == "multiple_choice":
        values = _mc_values(results, problems)
        return [(label, "huatuo_mc", values, "")] if values else []
    bench = _table_benchmark(results, table, problems)
    if bench is None:
        return []
    scores = results["scores"]
    if table == "vqa":
        sets = [(label, protocol, {f"{bench}_open": scores[protocol].get(open_key),
                                   f"{bench}_closed": scores[protocol].get(closed_key)}, "")
                for protocol, (open_key, closed_key) in VQA_METRICS.items() if isinstance(scores.get(protocol), dict)]
        if not sets:
            problems.append(f"scores hold neither of the protocols {list(VQA_METRICS)}")
        return sets
    protocol = "llava_med_qa50" if table == "qa50" else "biomed_vital_win_rate"
    summary = scores.get(protocol)
    if not isinstance(summary, dict):
        problems.append(f"scores hold no {protocol!r} entry")
        return []
    judge = summary.get("judge_model") or ""
    if table == "qa50":
        return [(label, protocol, _qa50_values(summary), judge)]
    rate = summary.get("win_rate")
    label = f"{summary.get('model_a') or label} vs {summary.get('model_b') or 'B'}"
    return [(label, protocol, {bench: None if rate is None else 100 * rate}, judge)]


def rows_from_results(path: Path, results: dict) -> tuple[list[Row], InputFile]:
    """Your rows from one results.json, and the record of what it was used as (or why it was not)."""
    answers = (results.get("config") or {}).get("answers_file")
    label = str(results.get("model") or (f"answers {answers}" if answers else "(model not recorded)"))
    info = InputFile(path, task=results["task"], model=label, num_questions=results.get("num_questions"),
                     skipped_records=dict(results.get("skipped") or {}))
    table = TASK_TABLES.get(info.task)
    if table is None:
        info.problems.append(f"task {info.task!r} has no table")
        return [], info
    rows = []
    for model, protocol, values, judge in _score_sets(results, table, label, info.problems):
        values = {k: float(v) for k, v in values.items() if v is not None}
        rows.append(Row(table, model, protocol, values, {k: str(path) for k in values}, judge=judge))
    if rows and not any(row.values for row in rows):
        info.problems.append("its scores are all empty (null)")
    rows = [row for row in rows if row.values]
    info.used_as = [f"{table} table: {', '.join(h for k, h in TABLES[table][1] if k in row.values)} ({row.protocol})"
                    for row in rows]
    return rows, info


def merge_rows(rows: list[Row]) -> list[Row]:
    """One row per (table, model, protocol, judge); the same cell from two files is an error naming both."""
    merged: dict[tuple, Row] = {}
    for row in rows:
        key = (row.table, row.model, row.protocol, row.judge)
        target = merged.setdefault(key, Row(row.table, row.model, row.protocol, judge=row.judge))
        for column, value in row.values.items():
            if column in target.values:
                raise ValueError(f"{target.sources[column]} and {row.sources[column]} both give {column} for "
                                 f"{row.model} ({row.protocol}); pass only one of them")
            target.values[column], target.sources[column] = value, row.sources[column]
    for row in merged.values():
        if row.table == "win_rate" and row.values:
            row.values["best"] = max(row.values.values())
    return list(merged.values())


# --- published rows --------------------------------------------------------------------------------------------------


def _published_row(table: str, entry: dict, protocols: dict, sources: dict) -> Row:
    where = f"{PUBLISHED_PATH.name}: {table} row {entry.get('model')!r}"
    columns = {key for key, _ in TABLES[table][1]}
    unknown = set(entry.get("values") or {}) - columns
    if unknown or not entry.get("values"):
        raise ValueError(f"{where}: values {sorted(unknown) or '(none)'} are not columns of the table")
    value_sources = {c: entry["source"] for c in entry["values"]} | (entry.get("value_sources") or {})
    missing = {entry.get("protocol")} - set(protocols) | set(value_sources.values()) - set(sources)
    if missing:
        raise ValueError(f"{where}: protocol or source {sorted(map(str, missing))} is not defined")
    if ("checked" in entry) == ("unverified" in entry):
        raise ValueError(f"{where}: give exactly one of 'checked' and 'unverified'")
    return Row(table, entry["model"], entry["protocol"], {k: float(v) for k, v in entry["values"].items()},
               value_sources, kind="paper", setting=entry.get("setting", ""),
               note=entry.get("checked") or entry.get("unverified"), verified="checked" in entry,
               chart=bool(entry.get("chart", False)))


def load_published(path: Path = PUBLISHED_PATH) -> tuple[list[Row], dict, dict]:
    """(published rows, protocol descriptions, sources) from the package data file, validated."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    protocols, sources = data["protocols"], data["sources"]
    unknown = set(data["published"]) - set(TABLES)
    if unknown:
        raise ValueError(f"{path.name}: unknown tables {sorted(unknown)}")
    rows = [_published_row(table, entry, protocols, sources)
            for table, entries in data["published"].items() for entry in entries]
    return rows, protocols, sources


def build_tables(yours: list[Row], published: list[Row], protocols: dict) -> dict[str, list[Row]]:
    """The tables that hold at least one of your rows; in each, protocol by protocol, your rows then the papers'."""
    order = {name: i for i, name in enumerate(protocols)}
    tables = {}
    for table in TABLES:
        rows = [r for r in yours if r.table == table]
        if rows:
            rows += [r for r in published if r.table == table]
            tables[table] = sorted(rows, key=lambda r: (order.get(r.protocol, len(order)), r.kind != "yours"))
    return tables


# --- entry point -----------------------------------------------------------------------------------------------------


def run_report(args: ReportArguments) -> int:
    """results.json files -> report.md, <table>.csv and report.png in `args.output_dir`; returns the exit code."""
    from .report_render import require_matplotlib, write_outputs

    if args.chart:
        require_matplotlib()  # before any work: a missing extra must not cost a half-written report
    paths = find_results_files(args.results)
    print(f"reading {len(paths)} results.json file(s)")
    yours, inputs = [], []
    for path in paths:
        file_rows, info = rows_from_results(path, read_results(path))
        yours += file_rows
        inputs.append(info)
        print(f"  {'used   ' if file_rows else 'skipped'} {path}: {'; '.join(info.used_as + info.problems)}")
    if not yours:
        reasons = "; ".join(f"{i.path}: {', '.join(i.problems)}" for i in inputs)
        raise ValueError(f"none of the {len(inputs)} results.json file(s) could be used ({reasons})")
    published, protocols, sources = load_published()
    tables = build_tables(merge_rows(yours), published, protocols)
    written = write_outputs(Path(args.output_dir), tables, inputs, protocols, sources, chart=args.chart)
    for table, rows in tables.items():
        mine = sum(r.kind == "yours" for r in rows)
        print(f"table {table}: {mine} row(s) of yours, {len(rows) - mine} published")
    left_out = [i for i in inputs if not i.used_as]
    if left_out:
        print(f"left out {len(left_out)} of {len(inputs)} file(s); see the Inputs section of report.md")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
