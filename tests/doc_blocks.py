"""Reading the docs' fenced code blocks and the shell commands in them, so tests can run or parse them as written.

A block may be preceded by a marker comment: `<!-- chain: NAME -->` (a step of a walkthrough the tests run; `chain:
NAME in FOLDER` runs it in FOLDER) or
`<!-- not run: why -->` (the tests never run or parse it). `docs/hub.md`'s test (tests/hub/test_docs_hub.py) runs
its blocks the same way.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

BLOCK = re.compile(r"(?:<!--\s*(?P<marker>[^>]*?)\s*-->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.DOTALL)
FOR_LOOP = re.compile(r"^for (\w+) in ([^;]+); do$")


@dataclass
class Block:
    doc: str
    marker: str
    lang: str
    code: str

    @property
    def chain(self) -> str | None:
        """`chain: NAME` or `chain: NAME in FOLDER` (the block runs in FOLDER, relative to the walkthrough's folder)."""
        return self.marker.split(":", 1)[1].split(" in ")[0].strip() if self.marker.startswith("chain:") else None

    @property
    def folder(self) -> str:
        return self.marker.split(" in ", 1)[1].strip() if self.chain and " in " in self.marker else "."

    @property
    def runnable(self) -> bool:
        return not self.marker.startswith("not run")


def doc_blocks(path: Path) -> list[Block]:
    return [Block(path.name, m["marker"] or "", m["lang"], m["code"]) for m in BLOCK.finditer(path.read_text())]


def shell_commands(code: str) -> list[str]:
    """The command lines of a bash block: continuations joined, comment-only lines dropped, a `for VAR in ...; do`
    ... `done` loop unrolled with `$VAR` substituted. Inline comments stay (shlex drops them)."""
    lines = [line.strip() for line in code.replace("\\\n", " ").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    commands, loop = [], None
    for line in lines:
        match = FOR_LOOP.match(line)
        if match:
            loop = (match[1], match[2].split(), [])
        elif loop and line == "done":
            var, values, body = loop
            commands += [b.replace(f"${var}", v).replace(f"${{{var}}}", v) for v in values for b in body]
            loop = None
        elif loop:
            loop[2].append(line)
        else:
            commands.append(line)
    return commands


def hf_medvlm_argv(command: str) -> list[str] | None:
    """The `hf-medvlm` arguments of a command line (`hf-medvlm X`, `python -m hf_medvlm X`, `accelerate launch ...
    -m hf_medvlm X`, `torchrun ... -m hf_medvlm X`), environment variables expanded; None for any other command."""
    argv = [os.path.expandvars(a) for a in shlex.split(command, comments=True)]
    while argv and re.fullmatch(r"\w+=.*", argv[0]):  # VAR=value prefixes
        argv = argv[1:]
    if argv[:1] == ["hf-medvlm"]:
        return argv[1:]
    if "-m" in argv and argv[argv.index("-m") + 1:argv.index("-m") + 2] == ["hf_medvlm"]:
        return argv[argv.index("-m") + 2:]
    return None


def export(command: str) -> bool:
    """Apply an `export A=1 B=2` line to os.environ; False if the line is not an export."""
    argv = shlex.split(command, comments=True)
    if argv[:1] != ["export"]:
        return False
    for assignment in argv[1:]:
        name, value = assignment.split("=", 1)
        os.environ[name] = os.path.expandvars(value)
    return True
