"""An on-disk reply cache keyed by request hash, so that rerunning a judge or a generation run costs nothing.

One small JSON file per reply under `{cache_dir}/{key[:2]}/{key}.json`, written to a temporary file and renamed into
place: concurrent threads and processes can share a cache directory, and a killed run never leaves a torn entry.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

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
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return None  # an unreadable entry is a miss; the fresh reply overwrites it
        data["cached"] = True
        return ChatResponse(**data)

    def put(self, key: str, response: ChatResponse) -> None:
        path = self._path(key)
        path.parent.mkdir(exist_ok=True)
        data = response.to_dict()
        data["cached"] = False
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        os.replace(tmp, path)

    def __len__(self) -> int:
        return sum(1 for _ in self.cache_dir.glob("*/*.json"))
