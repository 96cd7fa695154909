"""The fault-injection tier: every command that writes or resumes is SIGKILLed at chosen points and rerun.

Not in the default run (each kill is a fresh `python -m hf_medvlm` process, seconds of imports apiece): select it
with `python -m pytest -m faults` (CI runs it as its own step), or name the folder, `python -m pytest tests/faults`.
"""

from __future__ import annotations

from pathlib import Path


from tests.eval.conftest import tiny_model_dir  # noqa: F401 - fixtures shared with the areas' own tests
from tests.training.conftest import tiny_checkpoint, tiny_data_dir  # noqa: F401

HERE = Path(__file__).resolve().parent


def _asked_for(config) -> bool:
    if "faults" in (config.getoption("markexpr") or ""):
        return True
    return any(HERE == path or HERE in path.parents
               for path in (Path(arg.split("::")[0]).resolve() for arg in config.args))


def pytest_collection_modifyitems(config, items):
    if _asked_for(config):
        return
    kept = [item for item in items if item.get_closest_marker("faults") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
