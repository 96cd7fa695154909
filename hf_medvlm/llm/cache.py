"""An on-disk reply cache keyed by request hash, so that rerunning a judge or a generation run costs nothing.

One small JSON file per reply under `{cache_dir}/{key[:2]}/{key}.json`, written to a temporary file and renamed into
place (`hf_medvlm.files.atomic_write`): concurrent threads and processes can share a cache directory, and a killed
run never leaves a torn entry.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from ..files import atomic_write
from .types import ChatResponse

__all__ = ["ResponseCache"]


class ResponseCache:
    def __init__(self, cache_dir: str | os.PathLike):
        self.cache_dir = Path(cache_dir).expanduser()
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> ChatResponse | None:
        try:
            with open(self._path(key), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError):
            return None  # no entry, or an unreadable one (a miss; the fresh reply overwrites it)
        known = {f.name for f in dataclasses.fields(ChatResponse)}
        try:
            return ChatResponse(**{**{k: v for k, v in data.items() if k in known}, "cached": True})
        except TypeError:
            return None  # an entry from an incompatible version is a miss

    def put(self, key: str, response: ChatResponse) -> None:
        # A rerun that asks again for a reply whose write was killed removes the dead writer's temporary here.
        with atomic_write(self._path(key)) as f:
            json.dump({**dataclasses.asdict(response), "cached": False}, f, ensure_ascii=False)

    def __len__(self) -> int:
        return sum(1 for _ in self.cache_dir.glob("*/*.json"))
