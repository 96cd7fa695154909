"""`hf-medvlm report` (hf_medvlm/eval/report.py, report_render.py): mapping, published numbers, tables, bad inputs.

The results.json files here are hand-built in the shapes `hf-medvlm eval` writes (see test_report_cli.py for files
written by the real eval code path).
"""

import csv
import io
import json
import re
import sys

import pytest
from PIL import Image

from hf_medvlm.cli import main as cli_main
from hf_medvlm.eval.report import (BENCHMARKS, TABLES, benchmark_of, build_tables, find_results_files,
                                   identify_benchmark, load_published, merge_rows, read_results, rows_from_results)
from hf_medvlm.eval.report_render import draw_chart, render_csv, render_markdown


def vqa_results(benchmark="VQA-RAD", dataset="data/vqa_rad", model="runs/mine"):
    return {"benchmark": benchmark, "dataset": dataset, "task": "vqa", "model": model, "num_questions": 4,
            "skipped": {}, "config": {"dataset_type": dataset},
            "scores": {"llava_med": {"closed_accuracy": 75.0, "open_recall": 41.666666, "num_closed": 2},
                       "strict": {"closed_accuracy": 50.0, "open_exact_match": 0.0, "open_f1": 20.0}}}


def mc_results():
    """A Medical_Multimodal_Evaluation_Data run: per-dataset groups and one subset group."""
    groups = {"VQA-RAD_test": 60.0, "SLAKE_test": 70.0, "OmniMedVQA": 55.5, "OmniMedVQA_CT(Computed Tomography)": 40.0,
              "MMMU_Medical_Validation": 33.3333, "Some_Other_Set": 10.0}
    return {"benchmark": "Medical Multimodal Evaluation Data",
            "dataset": "data/mmed/medical_multimodel_evaluation_data.json",
            "task": "multiple_choice", "model": "runs/mc", "num_questions": 9, "skipped": {"not_multiple_choice": 2},
            "scores": {"huatuo_mc": {"accuracy": 58.0, "num_questions": 9, "decided_by": {"letter": 9},
                                     "accuracy_by_group": groups}}}


def qa50_results():
    def group(score, n=2):
        return {"relative_score": score, "reference_score": 8.0, "model_score": 4.0, "ratio_of_means": score, "n": n,
                "unparseable": 0}

    summary = {"protocol": "llava_med qa50 relative score", "judge_model": "judge-x", "overall": group(45.25, 4),
               "by_type": {"conversation": group(50.0), "detailed_description": group(40.5)},
               "by_domain": {"chest_xray": group(60.0), "ct_scan": group(30.5)}, "n_questions": 4, "n_scored": 4,
               "unparseable": {"count": 0, "by_reason": {}, "ids": []}}
    return {"benchmark": "LLaVA-Med qa50", "dataset": "data/llava_med_qa50", "task": "chat", "model": "runs/chat",
            "num_questions": 4, "skipped": {}, "scores": {"llava_med_qa50": summary}}


def win_rate_results(benchmark="VQA-RAD"):
    summary = {"protocol": "biomed_vital pairwise win rate", "model_a": "runs/mine", "model_b": "LLaVA-Med",
               "judge_model": "judge-x", "wins": 3, "ties": 1, "losses": 0, "win_rate": 0.75}
    return {"benchmark": benchmark, "dataset": "data/vqa_rad", "task": "win_rate", "model": None, "num_questions": 4,
            "skipped": {}, "scores": {"biomed_vital_win_rate": summary}}


def write(path, results):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    return path


def report_of(*results_list):
    rows, inputs = [], []
    for i, results in enumerate(results_list):
        file_rows, info = rows_from_results(f"r{i}/results.json", results)
        rows += file_rows
        inputs.append(info)
    published, protocols, sources = load_published()
    return build_tables(merge_rows(rows), published, protocols), inputs, protocols, sources


def md_row(markdown, *starts):
    """The cells of the Markdown table line that begins with `starts`."""
    prefix = "| " + " | ".join(starts) + " |"
    lines = [line for line in markdown.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    return [cell.strip() for cell in lines[0].strip("|").split(" | ")]


# ---- mapping rule


@pytest.mark.parametrize("name, expected", [
    ("VQA-RAD", "vqa_rad"), ("data/vqa_rad", "vqa_rad"), ("flaviagiammarino/vqa-rad", "vqa_rad"),
    ("VQA-RAD_test", "vqa_rad"), ("BoKelvin/SLAKE", "slake"), ("SLAKE_test", "slake"), ("data/path_vqa", "path_vqa"),
    ("flaviagiammarino/path-vqa", "path_vqa"), ("PathVQA", "path_vqa"), ("xmcmic/PMC-VQA", "pmc_vqa"),
    ("PMC-VQA_test", "pmc_vqa"), ("OmniMedVQA", "omnimedvqa"), ("MMMU_Medical_Validation", "mmmu_med"),
    ("LLaVA-Med qa50", "qa50"), ("data/llava_med_qa50", "qa50"), ("microsoft/LLaVA-Med-qa50", "qa50"),
    ("llava_med_eval_qa50_qa.jsonl", "qa50"), ("data/vqa_rad/", "vqa_rad"),
    ("hf_medvlm demo eval", None), ("demo-data", None), ("MMMU", None), ("tiny-vqa", None),
])
def test_benchmark_names_map_by_normalised_prefix(name, expected):
    assert benchmark_of(name) == expected


def test_benchmark_field_comes_first_then_dataset_then_dataset_type():
    assert identify_benchmark(vqa_results("SLAKE", "data/vqa_rad")) == ("slake", "benchmark 'SLAKE'")
    assert identify_benchmark(vqa_results("my run", "data/path_vqa"))[0] == "path_vqa"
    results = vqa_results("my run", "eval.parquet")
    results["config"]["dataset_type"] = "flaviagiammarino/vqa-rad"
    assert identify_benchmark(results) == ("vqa_rad", "dataset_type 'flaviagiammarino/vqa-rad'")
    bench, why = identify_benchmark(vqa_results("hf_medvlm demo eval", "demo-data"))
    assert bench is None and "'hf_medvlm demo eval'" in why and "'demo-data'" in why


def test_a_benchmark_without_a_column_in_its_table_is_left_out_with_the_reason():
    rows, info = rows_from_results("x.json", vqa_results("PMC-VQA", "data/pmc_vqa"))
    assert rows == [] and info.problems == ["PMC-VQA has no column in the vqa table"]
    chat = dict(qa50_results(), benchmark="my chat set", dataset="data/chat")
    rows, info = rows_from_results("x.json", chat)
    assert rows == [] and info.problems == ["names no known benchmark (benchmark 'my chat set', dataset 'data/chat')"]
    rows, info = rows_from_results("x.json", dict(vqa_results(), task="captioning"))
    assert rows == [] and info.problems == ["task 'captioning' has no table"]


def test_mc_groups_map_one_by_one_and_subset_groups_are_not_columns():
    rows, info = rows_from_results("mc.json", mc_results())
    assert rows[0].values == {"vqa_rad": 60.0, "slake": 70.0, "omnimedvqa": 55.5, "mmmu_med": 33.3333}
    assert info.problems == ["dataset group 'Some_Other_Set' names no benchmark of the multiple_choice table"]
    assert info.used_as == ["multiple_choice table: VQA-RAD, SLAKE, OmniMedVQA, MMMU-Med (val) (huatuo_mc)"]


def test_two_mc_groups_of_one_benchmark_are_not_pooled():
    results = mc_results()
    results["scores"]["huatuo_mc"]["accuracy_by_group"] = {"VQA-RAD_test": 60.0, "VQA-RAD_train": 90.0}
    rows, info = rows_from_results("mc.json", results)
    assert rows[0].values == {"vqa_rad": 60.0}
    assert info.problems == ["dataset groups map to VQA-RAD twice (accuracies cannot be pooled without counts); "
                             "'VQA-RAD_train' left out"]


def test_mc_without_groups_maps_by_its_benchmark_name():
    results = mc_results()
    results.update(benchmark="PMC-VQA", dataset="data/pmc_vqa")
    results["scores"]["huatuo_mc"]["accuracy_by_group"] = {}
    rows, _ = rows_from_results("pmc.json", results)
    assert rows[0].values == {"pmc_vqa": 58.0}


def test_rows_of_one_model_merge_across_files_and_a_duplicate_cell_names_both_files():
    rows = rows_from_results("a.json", vqa_results())[0] + rows_from_results("b.json", vqa_results("SLAKE"))[0]
    merged = merge_rows(rows)
    assert len(merged) == 2  # llava_med and strict
    assert merged[0].values == {"vqa_rad_open": 41.666666, "vqa_rad_closed": 75.0, "slake_open": 41.666666,
                                "slake_closed": 75.0}
    assert merged[0].sources["vqa_rad_open"] == "a.json" and merged[0].sources["slake_open"] == "b.json"
    with pytest.raises(ValueError, match=r"a.json and c.json both give vqa_rad_open for runs/mine \(llava_med\)"):
        merge_rows(rows + rows_from_results("c.json", vqa_results())[0])


# ---- published numbers


def test_published_file_is_valid_and_every_row_names_protocol_source_and_check():
    rows, protocols, sources = load_published()
    assert {r.table for r in rows} == set(TABLES)
    for row in rows:
        assert row.protocol in protocols and row.note
        assert all(s in sources for s in row.sources.values())
        assert set(row.values) <= {k for k, _ in TABLES[row.table][1]}
    unverified = {(r.table, r.model) for r in rows if not r.verified}
    assert ("qa50", "LLaVA-Med 60K-IM") in unverified and ("multiple_choice", "HuatuoGPT-Vision-7B") in unverified


def test_published_values_match_the_papers_tables():
    rows, _, sources = load_published()
    by = {(r.table, r.model, r.setting): r for r in rows}
    bv = by[("vqa", "BioMed-VITAL 13B", "150K instructions, fine-tuned 15 epochs per benchmark")]
    assert bv.values["vqa_rad_open"] == 69.72 and bv.values["path_vqa_closed"] == 92.42
    assert sources[bv.sources["vqa_rad_open"]]["short"] == "BioMed-VITAL Table 4"
    pmv = by[("multiple_choice", "LLaVA-v1.5-LLaMA3-8B + PubMedVision",
              "LLaVA-1.5 data + PubMedVision alignment and instruction-tuning VQA")]
    assert pmv.values == {"vqa_rad": 63.8, "slake": 74.5, "path_vqa": 59.9, "pmc_vqa": 52.7, "omnimedvqa": 75.1,
                          "mmmu_med": 50.3}
    assert [pmv.sources[k] for k in ("pmc_vqa", "omnimedvqa", "mmmu_med")] == [
        "pubmedvision_t2", "pubmedvision_t3", "pubmedvision_t8"]
    qa50 = by[("qa50", "BioMed-VITAL", "N")]
    assert qa50.values["overall"] == 68.63 and qa50.values["gross"] == 99.26


def test_a_published_row_with_an_unknown_column_or_source_is_an_error(tmp_path):
    from hf_medvlm.eval.report import PUBLISHED_PATH

    text = PUBLISHED_PATH.read_text().replace("vqa_rad_open: 61.52", "vqa_rad_opn: 61.52", 1)
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ValueError, match=r"vqa row 'LLaVA-Med v1.0 7B, from LLaVA': values \['vqa_rad_opn'\]"):
        load_published(tmp_path / "p.yaml")
    text = PUBLISHED_PATH.read_text().replace("source: biomed_vital_t2", "source: biomed_vital_t22", 1)
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ValueError, match="biomed_vital_t22"):
        load_published(tmp_path / "p.yaml")


# ---- tables, CSV, chart


def test_markdown_puts_your_numbers_beside_the_papers_with_protocols_and_sources():
    tables, inputs, protocols, sources = report_of(vqa_results(), mc_results(), qa50_results(), win_rate_results())
    assert list(tables) == ["vqa", "multiple_choice", "qa50", "win_rate"]
    md = render_markdown(tables, inputs, protocols, sources)
    assert md_row(md, "yours", "runs/mine", "", "llava_med")[4:7] == ["41.67", "75.00", ""]
    assert md_row(md, "yours", "runs/mine", "", "strict")[4:6] == ["0.00", "50.00"]
    paper = md_row(md, "paper", "LLaVA-Med v1.0 7B, from LLaVA", "60K-IM, fine-tuned 9 epochs per benchmark")
    assert paper[3:] == ["llava_med", "61.52", "84.19", "83.08", "85.34", "37.95", "91.21",
                         "LLaVA-Med performance page"]
    # papers' rows of a protocol follow your row of that protocol; strict has none
    lines = md.splitlines()
    assert lines.index(next(l for l in lines if "| yours | runs/mine |  | llava_med |" in l)) + 1 == lines.index(
        next(l for l in lines if l.startswith("| paper | LLaVA-Med v1.0 7B, from LLaVA |")))
    assert "strict: open = normalised exact match" in md and "(no published number uses it)" in md
    mc = md_row(md, "yours", "runs/mc")
    assert mc[4:10] == ["60.00", "70.00", "", "", "55.50", "33.33"]
    huatuo = md_row(md, "paper", "HuatuoGPT-Vision-34B")
    assert huatuo[4:] == ["68.1", "76.9", "63.5", "58.2", "76.7", "58.6",
                          "PubMedVision Table 2; PubMedVision Table 3 (OmniMedVQA); "
                          "PubMedVision Table 8 (MMMU-Med (val))"]
    assert md_row(md, "paper", "HuatuoGPT-Vision-7B")[-1] == "HuatuoGPT-Vision README †"
    qa50 = md_row(md, "yours", "runs/chat", "", "llava_med_qa50 (judge judge-x)")
    assert qa50[4:12] == ["50.00", "40.50", "60.00", "", "", "", "30.50", "45.25"]
    assert md_row(md, "paper", "LLaVA-Med 60K-IM")[-2:] == ["50.2", "LLaVA-Med Table 3 †"]
    win = md_row(md, "yours", "runs/mine vs LLaVA-Med")
    assert win[4:] == ["75.00", "", "", "75.00", "r3/results.json"]
    assert md_row(md, "paper", "BioMed-VITAL vs LLaVA-Med")[4:] == ["", "", "", "81.73",
                                                                    "BioMed-VITAL abstract and section 4.4 †"]
    assert "| r1/results.json | multiple_choice | runs/mc | 9 | not_multiple_choice=2 |" in md
    assert "- **BioMed-VITAL Table 2**: Cui et al., BioMed-VITAL (NeurIPS 2024), Table 2" in md


def test_csv_has_the_table_columns_and_raw_values():
    tables, _, _, sources = report_of(vqa_results(), qa50_results())
    records = list(csv.DictReader(io.StringIO(render_csv("vqa", tables["vqa"], sources))))
    assert list(records[0]) == ["row", "model", "setting", "protocol", "judge", "vqa_rad_open", "vqa_rad_closed",
                                "slake_open", "slake_closed", "path_vqa_open", "path_vqa_closed", "source", "verified",
                                "note"]
    assert records[0]["vqa_rad_open"] == "41.666666" and records[0]["slake_open"] == ""
    assert records[0]["source"] == "r0/results.json"
    vicuna = next(r for r in records if r["model"] == "LLaVA-Med v1.0 7B, from Vicuna" and r["verified"] == "no")
    assert vicuna["slake_open"] == "84.71" and "appendix Table 9" in vicuna["note"]
    qa50 = list(csv.DictReader(io.StringIO(render_csv("qa50", tables["qa50"], sources))))
    assert [k for k in qa50[0]][5:13] == ["conversation", "description", "cxr", "mri", "histology", "gross", "ct",
                                           "overall"]
    assert qa50[0]["judge"] == "judge-x"


def test_chart_is_a_png_with_one_panel_per_table():
    tables = report_of(vqa_results(), mc_results())[0]
    png = draw_chart(tables)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.height > 400
    image.verify()


# ---- the command: inputs and bad inputs


def test_folders_and_globs_find_results_files_once(tmp_path):
    a = write(tmp_path / "runs/a/results.json", vqa_results())
    b = write(tmp_path / "runs/b/deep/results.json", qa50_results())
    assert find_results_files([str(tmp_path / "runs")]) == [a, b]
    assert find_results_files([str(tmp_path / "runs/*/results.json"), str(a)]) == [a]
    with pytest.raises(FileNotFoundError, match="nope/results.json: no such file or folder"):
        find_results_files([str(tmp_path / "nope/results.json")])
    with pytest.raises(FileNotFoundError, match=r"\*.json: matches no results.json"):
        find_results_files([str(tmp_path / "*.json")])


@pytest.mark.parametrize("content, message", [
    ('{"task": "vqa", "scores": {', "not valid JSON (Expecting property name enclosed in double quotes at line 1"),
    ("[1, 2]", "holds a JSON list, not the object `hf-medvlm eval` writes"),
    ('{"task": "vqa"}', "field 'scores' is missing or not a dict"),
])
def test_a_file_that_is_not_a_results_json_is_named(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        read_results(path)


def run_report(tmp_path, *inputs, chart=True):
    argv = ["report", "--results", *map(str, inputs), "--output_dir", str(tmp_path / "report")]
    return cli_main(argv + ([] if chart else ["--chart", "false"]))


def missing_file(folder):
    return folder / "missing" / "results.json"


def malformed_json(folder):
    (folder / "bad").mkdir()
    (folder / "bad" / "results.json").write_text('{"task": "vqa", "scores": {')
    return folder / "bad"


def unknown_benchmark(folder):
    return write(folder / "demo" / "results.json", vqa_results("hf_medvlm demo eval", "demo-data"))


@pytest.mark.parametrize("make_input, expected", [
    (missing_file, "missing/results.json: no such file or folder"),
    (malformed_json, "bad/results.json: not valid JSON"),
    (unknown_benchmark, "none of the 1 results.json file(s) could be used (" ),
])
def test_bad_inputs_exit_2_with_one_line_naming_the_file(tmp_path, capsys, make_input, expected):
    assert run_report(tmp_path, make_input(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err
    assert err.startswith("hf-medvlm report: error: ")
    assert not (tmp_path / "report" / "report.md").exists()


def test_unknown_benchmark_is_reported_not_dropped(tmp_path, capsys):
    used = write(tmp_path / "a/results.json", vqa_results())
    unused = write(tmp_path / "demo/results.json", vqa_results("hf_medvlm demo eval", "demo-data"))
    assert run_report(tmp_path, used, unused, chart=False) == 0
    out = capsys.readouterr().out
    assert (f"skipped {unused}: names no known benchmark (benchmark 'hf_medvlm demo eval', dataset 'demo-data', "
            "dataset_type 'demo-data')") in out
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"| {unused} | vqa | runs/mine | 4 | none | left out: names no known benchmark" in md
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["report.md", "vqa.csv"]


def test_missing_matplotlib_fails_at_once_with_the_install_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    assert run_report(tmp_path, write(tmp_path / "a/results.json", vqa_results())) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "the bar chart needs matplotlib: pip install 'hf_medvlm[report]' (or pass --chart false)" in err
    assert not (tmp_path / "report").exists()
    assert run_report(tmp_path, tmp_path / "a/results.json", chart=False) == 0


def test_benchmarks_cover_every_table_column():
    columns = {k for _, cols in TABLES.values() for k, _ in cols}
    for bench in BENCHMARKS:
        assert bench == "qa50" or any(c == bench or c.startswith(bench + "_") for c in columns)
