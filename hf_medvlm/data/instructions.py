"""Stage-1 description instructions (LLaVA-Med Tables 6 and 7, reworded; see the JSON file for provenance)."""

from __future__ import annotations

import functools
import json
import zlib
from pathlib import Path

__all__ = ["load_description_instructions", "pick_instruction"]

_FILE = Path(__file__).parent / "resources" / "llava_med_description_instructions.json"


@functools.lru_cache(maxsize=1)
def load_description_instructions() -> dict[str, tuple[str, ...]]:
    """`{"brief": (...11...), "detailed": (...16...)}`."""
    data = json.loads(_FILE.read_text(encoding="utf-8"))
    return {"brief": tuple(data["brief"]), "detailed": tuple(data["detailed"])}


def pick_instruction(key: str, kind: str = "brief") -> str:
    """A deterministic choice per record key (crc32, not `hash()`, so it is stable across processes)."""
    choices = load_description_instructions()[kind]
    return choices[zlib.crc32(key.encode("utf-8")) % len(choices)]
