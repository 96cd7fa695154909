"""`hf-medvlm report`'s outputs: `report.md` (every table, the inputs, the sources), `<table>.csv` and `report.png`.

Your numbers print with two decimals, published ones with the precision their paper prints (`decimals` of their
source). Every file is written to a temporary name and renamed, so an interrupted report leaves no complete-looking
file behind.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..files import atomic_write
from .report import TABLES, InputFile, Row

__all__ = ["require_matplotlib", "render_markdown", "render_csv", "draw_chart", "write_outputs"]


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("the bar chart needs matplotlib: pip install 'hf_medvlm[report]' (or pass --chart false)"
                          ) from None


def _cell(row: Row, key: str, sources: dict) -> str:
    if key not in row.values:
        return ""
    decimals = 2 if row.kind == "yours" else sources[row.sources[key]].get("decimals", 2)
    return f"{row.values[key]:.{decimals}f}"


def _protocol(row: Row) -> str:
    return f"{row.protocol} (judge {row.judge})" if row.judge else row.protocol


def _source(row: Row, table: str, sources: dict) -> str:
    """Your rows: their results.json files. Published rows: the row's source, then any column-level ones."""
    headers = dict(TABLES[table][1])
    ordered = list(dict.fromkeys(row.sources[k] for k in headers if k in row.sources))
    if row.kind == "yours":
        return "; ".join(ordered)
    main = max(ordered, key=list(row.sources.values()).count)
    parts = [sources[main]["short"]]
    for source in ordered:
        if source != main:
            columns = ", ".join(headers[k] for k in headers if row.sources.get(k) == source)
            parts.append(f"{sources[source]['short']} ({columns})")
    return "; ".join(parts)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines; a `|` in a cell is escaped and a line break becomes a space."""
    cells = [header, *rows]
    lines = ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in cells]
    return [lines[0], "|---" * len(header) + "|", *lines[1:]]


def _markdown_table(table: str, rows: list[Row], protocols: dict, sources: dict) -> list[str]:
    title, columns = TABLES[table]
    header = ["row", "model", "setting", "protocol", *(h for _, h in columns), "source"]
    cells = [[row.kind, row.model, row.setting, _protocol(row), *(_cell(row, k, sources) for k, _ in columns),
              _source(row, table, sources) + ("" if row.verified else " †")] for row in rows]
    lines = [f"## {title}", "", *_md_table(header, cells), "", "Protocols:"]
    for protocol in dict.fromkeys(row.protocol for row in rows):
        alone = all(r.kind == "yours" for r in rows if r.protocol == protocol)
        lines.append(f"- {protocols.get(protocol, protocol)}" + (" (no published number uses it)" if alone else ""))
    notes = [f"- † {row.model} ({row.setting or row.protocol}): {row.note}" for row in rows if not row.verified]
    if notes:
        lines += ["", "Not found in the papers' text:", *notes]
    return lines + [""]


def _inputs_section(inputs: list[InputFile]) -> list[str]:
    cells = []
    for info in inputs:
        skipped = ", ".join(f"{k}={v}" for k, v in info.skipped_records.items()) or "none"
        outcome = "; ".join(info.used_as) or "left out: " + "; ".join(info.problems)
        if info.used_as and info.problems:
            outcome += "; problems: " + "; ".join(info.problems)
        questions = "" if info.num_questions is None else info.num_questions
        cells.append([info.path, info.task, info.model, questions, skipped, outcome])
    header = ["results.json", "task", "model", "questions", "skipped records", "used as / left out"]
    return ["## Inputs", "", *_md_table(header, cells), ""]


def render_markdown(tables: dict[str, list[Row]], inputs: list[InputFile], protocols: dict, sources: dict) -> str:
    lines = ["# Paper tables", "",
             f"Written by `hf-medvlm report` from {len(inputs)} results.json file(s). Rows `yours` come from your "
             "runs (files under Inputs); rows `paper` are published numbers, each with its source. Every row names "
             "its protocol: compare numbers only between rows of the same protocol.", ""]
    for table, rows in tables.items():
        lines += _markdown_table(table, rows, protocols, sources)
    lines += _inputs_section(inputs)
    used = {s for rows in tables.values() for r in rows if r.kind == "paper" for s in r.sources.values()}
    lines += ["## Sources", ""] + [f"- **{sources[s]['short']}**: {sources[s]['cite']}" for s in sources if s in used]
    return "\n".join(lines) + "\n"


def render_csv(table: str, rows: list[Row], sources: dict) -> str:
    """One table as CSV: raw values (no rounding), empty where a row has no value."""
    keys = [key for key, _ in TABLES[table][1]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", "model", "setting", "protocol", "judge", *keys, "source", "verified", "note"])
    for row in rows:
        writer.writerow([row.kind, row.model, row.setting, row.protocol, row.judge,
                         *(row.values.get(k, "") for k in keys), _source(row, table, sources),
                         "yes" if row.verified else "no", row.note])
    return out.getvalue()


def _draw_panel(ax, table: str, rows: list[Row]) -> None:
    title, columns = TABLES[table]
    columns = [(k, h) for k, h in columns if any(k in r.values for r in rows)]
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        offset = (i - (len(rows) - 1) / 2) * width
        xs = [j + offset for j, (key, _) in enumerate(columns) if key in row.values]
        heights = [row.values[key] for key, _ in columns if key in row.values]
        label = f"{row.kind}: {row.model} [{_protocol(row)}{', ' + row.setting if row.setting else ''}]"
        ax.bar(xs, heights, width, label=label if len(label) <= 90 else label[:87] + "...",
               hatch="" if row.kind == "yours" else "//", edgecolor="black", linewidth=0.4)
    ax.set_xticks(range(len(columns)), [h for _, h in columns])
    ax.set_ylabel("%")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def draw_chart(tables: dict[str, list[Row]]) -> bytes:
    """PNG bytes: one panel per table with your rows and the published rows marked `chart: true` (hatched)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    panels = {table: [r for r in rows if r.kind == "yours" or r.chart] for table, rows in tables.items()}
    figure = Figure(figsize=(15, 4 * len(panels)), layout="constrained")
    for ax, (table, rows) in zip(figure.subplots(len(panels), 1, squeeze=False)[:, 0], panels.items()):
        _draw_panel(ax, table, rows)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=80)
    return out.getvalue()


def write_outputs(output_dir: Path, tables: dict[str, list[Row]], inputs: list[InputFile], protocols: dict,
                  sources: dict, chart: bool = True) -> list[Path]:
    """report.md, one CSV per table and (with `chart`) report.png; returns the paths written."""
    output_dir.mkdir(parents=True, exist_ok=True)
    report = output_dir / "report.md"
    files = {output_dir / f"{table}.csv": render_csv(table, rows, sources) for table, rows in tables.items()}
    if chart:
        files[output_dir / "report.png"] = draw_chart(tables)
    files[report] = render_markdown(tables, inputs, protocols, sources)  # written last
    for path, data in files.items():
        with atomic_write(path, "wb") as handle:  # a dead run's temporary is removed by the next write of this file
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return [report, *(path for path in files if path != report)]
