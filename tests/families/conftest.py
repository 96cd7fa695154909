"""Tiny random models of each supported family (hf_medvlm.testing, hf_medvlm.testing.families), built once per session.

`FAMILIES` maps a family name to its builder and to where `resolve_parts` must find its parts: the module names are
the transformers classes' own, so a change in them (or in the resolution) shows here. Nothing from the HF libraries is
imported at module level: this file loads before `tests/conftest.py` points them at the loopback Hub.
"""

from __future__ import annotations

import pytest

# family -> (builder in hf_medvlm.testing[.families], (vision tower, projector, language model) paths, end-of-turn)
FAMILIES = {
    "llava_med": ("build_tiny_llava_med", (("model.vision_tower",), ("model.multi_modal_projector",),
                                           ("model.language_model", "lm_head")), "</s>"),
    "qwen2_5_vl": ("build_tiny_qwen2_5_vl", (("model.visual",), ("model.visual.merger",),
                                             ("model.language_model", "lm_head")), "<|im_end|>"),
    "smolvlm": ("build_tiny_smolvlm", (("model.vision_model",), ("model.connector",),
                                       ("model.text_model", "lm_head")), "<end_of_utterance>"),
    "gemma3": ("build_tiny_gemma3", (("model.vision_tower",), ("model.multi_modal_projector",),
                                     ("model.language_model", "lm_head")), "<end_of_turn>"),
}
OTHER_FAMILIES = [name for name in FAMILIES if name != "llava_med"]

_BUILT: dict = {}


def tiny_family(name: str):
    """`(model, processor)` of a family, shared across the session: copy the model before changing it."""
    if name not in _BUILT:
        import hf_medvlm.testing
        import hf_medvlm.testing.families

        module = hf_medvlm.testing if name == "llava_med" else hf_medvlm.testing.families
        _BUILT[name] = getattr(module, FAMILIES[name][0])()
    return _BUILT[name]


@pytest.fixture(scope="session")
def family_checkpoints(tmp_path_factory):
    """A function returning the saved tiny checkpoint folder of a family (saved on first use)."""
    folders = {}

    def get(name: str):
        if name not in folders:
            model, processor = tiny_family(name)
            folders[name] = tmp_path_factory.mktemp(f"tiny_{name}")
            model.save_pretrained(folders[name])
            processor.save_pretrained(folders[name])
        return folders[name]

    return get


def conversation_rows() -> list[dict]:
    """Training-schema rows with images of different sizes and counts, several rounds, and a text-only row."""
    from tests.conftest import make_rgb_image

    def row(row_id, per_round, sizes, answers):
        messages, images, sizes = [], [], iter(sizes)
        for r, (count, answer) in enumerate(zip(per_round, answers)):
            images += [make_rgb_image(*next(sizes), seed=len(images) + k) for k in range(count)]
            question = {"type": "text", "text": f"Question {r}: what is seen?"}
            user = [{"type": "image", "text": None}] * count + [question]
            messages += [{"role": "user", "content": user},
                         {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
        return {"id": row_id, "images": images, "messages": messages}

    return [
        row("one", [1], [(48, 40)], ["A chest X-ray."]),
        row("two-sizes", [2], [(100, 30), (20, 20)], ["Two scans of the liver."]),
        row("rounds", [1, 0, 2], [(64, 64), (33, 90), (200, 150)], ["An MRI.", "No.", "The left lobe."]),
        row("text", [0], [], ["Pneumonia is an infection of the lung."]),
    ]


def to_dataset(rows: list[dict]):
    import datasets

    from hf_medvlm.data.schema import TRAINING_FEATURES

    features = datasets.Features({k: TRAINING_FEATURES[k] for k in ("id", "images", "messages")})
    return datasets.Dataset.from_list(rows, features=features)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """The embedded demo set (real medical images of several sizes): configs `instruct` and `eval`."""
    from hf_medvlm.data.demo import write_demo_dataset

    return write_demo_dataset(tmp_path_factory.mktemp("demo_data"))
