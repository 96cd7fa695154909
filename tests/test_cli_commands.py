"""Every `hf-medvlm` command meets the same bar: `--help` with a usage line and an example, clean one-line errors on
bad input. In-process through `hf_medvlm.cli.main`, plus one run per command of the real console entry."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from hf_medvlm.cli import COMMANDS, main

# The commands the product promises (README, docs/cli.md); each must be wired to a module.
EXPECTED = {"convert", "fetch-images", "prepare", "train", "merge-lora", "eval", "report", "generate", "filter", "select",
            "push", "demo"}
# The installed console script when there is one (`pip install -e .`), else the same entry through the interpreter.
ENTRY = [shutil.which("hf-medvlm")] if shutil.which("hf-medvlm") else [sys.executable, "-m", "hf_medvlm"]


def test_every_promised_command_is_wired():
    assert EXPECTED == set(COMMANDS), f"missing: {sorted(EXPECTED - set(COMMANDS))}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_has_usage_and_an_example(name, capsys):
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: hf-medvlm {name} "), out[:200]
    assert "example" in out.lower(), f"`hf-medvlm {name} --help` shows no example"


# A bad path or config for each command that reads one: exit code 2, one sentence on stderr naming the path, no
# traceback. (Commands with sub-commands get their most common one.)
BAD_INPUT = {
    "train": ["--config", "does/not/exist.yaml"],
    "eval": ["--config", "does/not/exist.yaml"],
    "report": ["--results", "does/not/exist.json", "--output_dir", "out"],
    "select": ["--config", "does/not/exist.yaml"],
    "merge-lora": ["--adapter_path", "does/not/exist", "--output_dir", "out"],
    "push": ["--folder", "does/not/exist", "--repo_id", "user/x"],
    "convert": ["--input_dir", "does/not/exist", "--output_dir", "out"],
    "prepare": ["vqa_rad", "--input_path", "does/not/exist.json", "--output_dir", "out"],
    "fetch-images": ["--urls_file", "does/not/exist.jsonl", "--output_dir", "out"],
    "generate": ["llava-med", "--input", "does/not/exist.jsonl", "--output_dir", "out", "--llm_base_url",
                 "http://127.0.0.1:9/v1", "--llm_model", "m"],
    "filter": ["pubmedvision", "--input", "does/not/exist.jsonl", "--output_dir", "out"],
}


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_path_is_one_clean_line(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([name, *BAD_INPUT[name]]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line] == [err.strip().splitlines()[-1]], err
    assert "does/not/exist" in err.strip().splitlines()[-1]


def test_debug_flag_lets_the_error_through():
    with pytest.raises(FileNotFoundError, match="does/not/exist"):
        main(["merge-lora", "--adapter_path", "does/not/exist", "--output_dir", "out", "--debug"])


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_console_entry_smoke(name):
    result = subprocess.run([*ENTRY, name, "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: hf-medvlm {name} ") and "Traceback" not in result.stderr
