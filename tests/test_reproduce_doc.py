"""docs/reproduce.md says what the recipes do: every recipe it names exists, every command it shows parses with the
real parser, every training/evaluation command reads data a `prepare` line on the page writes (or an earlier command's
output), every model it starts from is an earlier command's output, and every recipe value it quotes is the recipe's.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reproduce.md"
RECIPES = ROOT / "recipes"
# Folders the page says are built by hand (LLaVA-1.5's own data) or downloaded as they are.
BY_HAND = {"data/llava_v1_5_pretrain", "data/llava_v1_5_mix665k", "data/mmed/medical_multimodel_evaluation_data.json"}


def _commands() -> list[list[str]]:
    """The `hf-medvlm <verb> ...` command lines of the page's bash blocks, as argv lists starting with the verb."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # OPENAI_API_KEY=... prefixes
                words.pop(0)
            if "-m" in words and words[0] == "accelerate":
                words = words[words.index("-m") + 2:]  # accelerate launch ... -m hf_medvlm <verb> ...
            elif words[:1] == ["hf-medvlm"]:
                words = words[1:]
            else:
                continue
            commands.append(words)
    return commands


def _parse(argv: list[str]):
    """(verb, parsed dataclasses) with the command's own parser; CPU-only parsing for GPU training recipes."""
    verb, rest = argv[0], argv[1:]
    if verb == "train":
        from hf_medvlm.commands.train import parse_args

        return parse_args(rest + ["--use_cpu", "true"])
    if verb == "eval":
        from hf_medvlm.commands.eval import parse_args

        return parse_args(rest)
    if verb == "generate":
        from hf_medvlm.commands.generate import parse_args

        return parse_args(rest)[1]
    if verb == "select":
        from hf_medvlm.commands.select import parse_args

        return parse_args(rest)
    from transformers import HfArgumentParser

    if verb == "prepare":
        from hf_medvlm.data.prepare import PrepareArguments

        return HfArgumentParser(PrepareArguments).parse_args_into_dataclasses(rest[1:])
    if verb == "filter":
        from hf_medvlm.generation.pubmedvision_filter import FilterArguments, TrainClassifierArguments

        step = FilterArguments if rest[0] == "pubmedvision" else TrainClassifierArguments
        return HfArgumentParser(step).parse_args_into_dataclasses(rest[1:])
    return None  # fetch-images, merge-lora: no data or model chain to check


def _get(parsed, name: str):
    return next(getattr(p, name) for p in parsed if hasattr(p, name))


def _data_read(parsed) -> list[tuple[str, str | None]]:
    mixture = next((p.datasets for p in parsed if getattr(p, "datasets", None)), None)
    if mixture:
        return [(d.path, d.name) for d in mixture]
    return [(_get(parsed, "dataset_name"), _get(parsed, "dataset_config"))]


def test_every_recipe_the_page_names_exists():
    named = set(re.findall(r"recipes/[\w./-]+\.yaml", DOC.read_text()))
    assert named and not [path for path in sorted(named) if not (ROOT / path).is_file()]


def test_commands_parse_and_chain_data_and_models():
    from hf_medvlm.data.prepare import SOURCES

    prepared, outputs, checked = set(), set(), 0
    for argv in _commands():
        parsed = _parse(argv)
        if parsed is None:
            continue
        verb = argv[0]
        if verb == "prepare":
            (args,) = parsed
            prepared.add((args.output_dir, args.config_name or next(iter(SOURCES[argv[1]].configs))))
            continue
        if verb in ("train", "eval"):
            for name, config in _data_read(parsed):
                assert (name, config) in prepared or name in outputs or name in BY_HAND, (argv, name, config)
            model = _get(parsed, "model_name_or_path")
            assert model is None or not model.startswith("runs/") or model in outputs, (argv, model)
            checked += 1
        output = next((getattr(p, "output_dir", None) for p in parsed if getattr(p, "output_dir", None)), None)
        outputs.add(output)
    assert checked >= 15, checked


def _recipe_value(rel: str, key: str):
    path = RECIPES / rel
    verb = "eval" if "/eval/" in rel else "select" if "/selection/" in rel else "generate" if "/generate/" in rel \
        else "train"
    return _get(_parse([verb, "--config", str(path)]), key)


def _quoted_values() -> list[tuple[str, str, str]]:
    section = DOC.read_text().split("## Recipe values quoted on this page", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+\.yaml)` \| `(\w+)` \| `([^`]+)` \|$", section, re.MULTILINE)


@pytest.mark.parametrize("rel, key, value", _quoted_values())
def test_quoted_recipe_values_are_the_recipes(rel, key, value):
    actual = _recipe_value(rel, key)
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        assert float(actual) == float(value)
    else:
        assert str(actual) == value


def _deviation_rows() -> dict[str, list[list[str]]]:
    """{paper: [[deviation, reason], ...]} from the page's one deviations section."""
    section = DOC.read_text().split("## Deviations from the papers", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for paper, table in re.findall(r"^\*\*([\w-]+)\*\*\n\n(.*?)(?:\n\n|\Z)", section, re.MULTILINE | re.DOTALL):
        lines = table.strip().splitlines()[2:]  # past the header and its |---| line
        rows[paper] = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    return rows


def test_the_values_table_is_not_empty_and_deviations_are_listed_once():
    text = DOC.read_text()
    assert len(_quoted_values()) >= 30
    assert text.count("## Deviations from the papers") == 1


def test_every_deviation_has_a_reason_and_lives_in_the_one_list():
    rows = _deviation_rows()
    assert set(rows) == {"LLaVA-Med", "PubMedVision", "BioMed-VITAL"}
    for paper, table in rows.items():
        assert len(table) >= 5, paper
        for row in table:
            assert len(row) == 2 and all(len(cell) > 5 for cell in row), (paper, row)
    # One place: no other deviation table on this page or in the other docs.
    header = "| deviation | reason |"
    assert DOC.read_text().count(header) == 3
    assert not [p.name for p in (ROOT / "docs").glob("*.md") if p != DOC and header in p.read_text()]
