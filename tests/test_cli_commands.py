"""Every `hf-medvlm` subcommand meets the same bar: `--help` with an example, clean one-line errors on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hf_medvlm.cli import COMMANDS

# The subcommands the product promises (README, docs/cli.md); each must be wired to a module.
EXPECTED = {"convert", "fetch-images", "prepare", "train", "merge-lora", "eval", "generate", "filter", "select", "push",
            "demo"}


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hf_medvlm", *args], capture_output=True, text=True, timeout=timeout)


def test_every_promised_command_is_wired():
    assert EXPECTED <= set(COMMANDS), f"missing: {sorted(EXPECTED - set(COMMANDS))}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_has_an_example_and_exits_zero(name):
    result = run(name, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower()
    assert "example" in result.stdout.lower(), f"`hf-medvlm {name} --help` shows no example"
    assert "Traceback" not in result.stderr


# A bad path or config for each command that reads one: exit code 2, one sentence on stderr naming the path, no
# traceback. (Commands with subcommands get their most common one.)
BAD_INPUT = {
    "train": ["--config", "does/not/exist.yaml"],
    "eval": ["--config", "does/not/exist.yaml"],
    "merge-lora": ["--adapter_path", "does/not/exist", "--output_dir", "out"],
    "push": ["--folder", "does/not/exist", "--repo_id", "user/x"],
    "convert": ["--input_dir", "does/not/exist", "--output_dir", "out"],
}


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_path_is_one_clean_line(name):
    if name not in COMMANDS:
        pytest.skip(f"{name} is not wired")
    result = run(name, *BAD_INPUT[name])
    assert result.returncode == 2, (result.returncode, result.stdout[-1000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert "does/not/exist" in result.stderr


def test_debug_flag_shows_the_traceback():
    result = run("train", "--config", "does/not/exist.yaml", "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr
