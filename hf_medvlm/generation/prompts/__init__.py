"""Paper prompts, scenarios and question sets, kept as YAML data files that name their source. `load_prompt_file`
also takes the path of a user file of the same shape, so prompts can be swapped without touching code.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

__all__ = ["PACKAGED_PROMPTS", "load_prompt_file"]

PACKAGED_PROMPTS = (
    "llava_med_self_instruct", "llava_med_turn_filters", "pubmedvision_reformat", "pubmedvision_image_labels",
    "biomed_vital",
)


def load_prompt_file(name_or_path: str | Path, required_keys: tuple[str, ...] = ()) -> dict:
    """Load a packaged prompt file by name, or a user YAML file by path, and check it has ``required_keys``."""
    if str(name_or_path) in PACKAGED_PROMPTS:
        path = resources.files(__name__).joinpath(f"{name_or_path}.yaml")
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"prompt file {path} does not exist (packaged prompts: {', '.join(PACKAGED_PROMPTS)})")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"prompt file {path} must hold a YAML mapping at the top level")
    missing = [key for key in required_keys if key not in data]
    if missing:
        raise ValueError(f"prompt file {name_or_path} lacks the key(s) {', '.join(missing)}")
    return data
