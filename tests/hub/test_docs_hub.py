"""docs/hub.md's examples run as written, in order, against the loopback Hub."""

from __future__ import annotations

import re
import shlex

import pytest

from hf_medvlm.cli import main as cli_main

BLOCK = re.compile(r"(<!-- not run[^>]*-->\n)?```(python|bash)\n(.*?)```", re.DOTALL)


def _blocks(text: str) -> list[tuple[str, str]]:
    return [(lang, code) for skip, lang, code in BLOCK.findall(text) if not skip]


def _run_shell(code: str) -> None:
    for line in filter(None, (line.strip() for line in code.splitlines())):
        argv = shlex.split(line)
        assert argv[0] == "hf-medvlm", f"docs/hub.md runs a command the test does not know: {line}"
        assert cli_main(argv[1:]) == 0, line


@pytest.mark.integration
def test_every_example_in_hub_md_runs(hub_server, repo_root, tmp_path, monkeypatch):
    blocks = _blocks((repo_root / "docs" / "hub.md").read_text())
    assert [lang for lang, _ in blocks].count("bash") == 1 and len(blocks) == 5
    (tmp_path / "recipes").symlink_to(repo_root / "recipes")
    monkeypatch.chdir(tmp_path)  # the examples write to out/ and read recipes/
    for lang, code in blocks:
        _run_shell(code) if lang == "bash" else exec(compile(code, "docs/hub.md", "exec"), {})
    # the CLI pushed both folders again unchanged: no commit beyond the first push's (initial, data, card)
    assert hub_server.commit_count("me/vqa-demo", "dataset") == 3
    assert hub_server.commit_count("me/llava-med-tiny", revision="v0.1") == 2  # initial, model with its card
