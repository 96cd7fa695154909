"""Files that survive `kill -9`: resumable JSONL (`read_jsonl` cuts off the last line a kill tore), all-or-nothing
writes (`atomic_write`) and temporaries a rerun can prove stale: their names carry host and pid, so a rerun removes
only those of dead processes of its own host, never a live writer's or another machine's on a shared disk. The rules
every command follows: docs/cli.md, "Exit codes, resume and temporary files".
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any, Iterator

__all__ = [
    "temporary_path",
    "pid_alive",
    "stale_temporaries",
    "remove_stale_temporaries",
    "atomic_write",
    "atomic_write_text",
    "read_jsonl",
    "confined_path",
]

logger = logging.getLogger(__name__)


def temporary_path(target: str | os.PathLike, kind: str = "tmp") -> Path:
    """A fresh temporary name beside `target` that says which host and process made it."""
    target = Path(target)
    return target.parent / f".{target.name}.{kind}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def stale_temporaries(target: str | os.PathLike, kinds: str = "tmp|old") -> list[Path]:
    """The temporaries of `target` (named by `temporary_path` with one of `kinds`, e.g. "tmp|old") that a process of
    this host made and that process is dead."""
    target = Path(target)  # glob finds nothing, without an error, in a folder that does not exist
    prefix = f".{target.name}."
    pattern = re.compile(rf"{re.escape(prefix)}(?:{kinds})-{re.escape(socket.gethostname())}-(\d+)-[0-9a-f]{{8}}")
    return [path for path in target.parent.glob(glob.escape(prefix) + "*")
            if (match := pattern.fullmatch(path.name)) and not pid_alive(int(match.group(1)))]


def remove_stale_temporaries(target: str | os.PathLike, kinds: str = "tmp|old") -> list[Path]:
    """Delete the `stale_temporaries` of `target` (files or folders); returns what was removed."""
    stale = stale_temporaries(target, kinds)
    for path in stale:
        logger.warning("removing %s, left by a run that was killed", path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temporary beside `path` for writing; on success it replaces `path`, on any error it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path) as handle:
        handle.write(text)
    return Path(path)


def read_jsonl(path: str | os.PathLike, *, repair: bool = False, what: str = "valid JSON") -> list[tuple[int, Any]]:
    """`(line number, value)` for every non-blank line of a JSONL file that is written by appending whole lines.

    A last line without its newline that does not parse was torn by a kill: it is skipped with a warning and, with
    `repair`, cut off. With `repair` a complete last line without its newline gets one, so the next append starts a
    line of its own. A line elsewhere that does not parse is a `ValueError` naming the file and line ("not {what}").
    """
    path = Path(path)
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        lines = handle.readlines()
    rows: list[tuple[int, Any]] = []
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            try:
                rows.append((number, json.loads(raw)))
            except ValueError as err:  # JSONDecodeError, or UnicodeDecodeError from a multi-byte character cut in two
                if number < len(lines) or raw.endswith(b"\n"):
                    raise ValueError(f"{path}, line {number}: not {what} ({type(err).__name__}: {err}).") from None
                logger.warning("%s: ignoring a torn last line (a run was killed while writing it).", path)
                if repair:
                    os.truncate(path, sum(map(len, lines[:-1])))  # only the last line can be torn
                return rows
    if repair and lines and not lines[-1].endswith(b"\n"):
        with open(path, "ab") as handle:
            handle.write(b"\n")
    return rows


def confined_path(root: str | os.PathLike, reference: str) -> Path:
    """`root / reference` for a relative path that stays inside `root`; a `ValueError` for an absolute path or one
    whose `..` parts leave `root`.

    The check is on the text of the path, as a record wrote it: a symlink the user put inside `root` is followed as
    the user intended, while a record cannot name a file elsewhere.
    """
    if os.path.isabs(reference) or Path(reference).drive or reference.startswith(("/", "\\")):
        raise ValueError(f"{reference!r} is an absolute path; paths in records must be relative to {str(root)!r}")
    normal = os.path.normpath(reference.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"{reference!r} leaves {str(root)!r} through '..'")
    return Path(root) / normal
