"""Fixtures for the training tests: a saved tiny LlavaMed, its parts saved separately, and a tiny data folder."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

from tests.conftest import make_rgb_image

QUESTIONS = [
    ("What imaging modality is shown?", "A chest X-ray."),
    ("Is there an abnormality in the left lung?", "Yes, an opacity in the left lower lobe."),
    ("Which organ is highlighted?", "The liver."),
    ("Describe the image briefly.", "A histology slide stained with hematoxylin and eosin."),
]


def instruct_rows(num: int = 8, text_only_every: int = 4) -> list[dict]:
    """Training-schema rows: image conversations, every `text_only_every`-th one text-only (empty `images`)."""
    rows = []
    for i in range(num):
        question, answer = QUESTIONS[i % len(QUESTIONS)]
        with_image = text_only_every == 0 or i % text_only_every != text_only_every - 1
        user = ([{"type": "image", "text": None}] if with_image else []) + [{"type": "text", "text": question}]
        rows.append({
            "id": f"tiny-{i}",
            "images": [make_rgb_image(40 + i, 36, seed=i)] if with_image else [],
            "messages": [
                {"role": "user", "content": user},
                {"role": "assistant", "content": [{"type": "text", "text": answer}]},
            ],
        })
    return rows


def alignment_rows(num: int = 8) -> list[dict]:
    rows = instruct_rows(num, text_only_every=0)
    for row in rows:
        row["messages"][0]["content"][1]["text"] = "Describe the image concisely."
    return rows


def write_tiny_dataset(folder: Path) -> Path:
    """A Parquet folder with configs `alignment` and `instruct` (split `train`), loadable with `load_dataset`."""
    import datasets

    features = datasets.Features({
        "id": datasets.Value("string"),
        "images": datasets.List(datasets.Image()),
        "messages": datasets.List({
            "role": datasets.Value("string"),
            "content": datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")}),
        }),
    })
    for name, rows in (("alignment", alignment_rows()), ("instruct", instruct_rows())):
        (folder / name).mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(rows, features=features).to_parquet(str(folder / name / "train-00000-of-00001.parquet"))
    (folder / "README.md").write_text(
        "---\nconfigs:\n"
        "- config_name: alignment\n  data_files:\n  - split: train\n    path: alignment/train-*\n"
        "- config_name: instruct\n  data_files:\n  - split: train\n    path: instruct/train-*\n---\n"
    )
    return folder


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory) -> Path:
    """The embedded demo set (hf_medvlm.data.demo): configs `alignment` and `instruct`, real medical images."""
    from hf_medvlm.data.demo import write_demo_dataset

    return write_demo_dataset(tmp_path_factory.mktemp("demo_data"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A saved random tiny LlavaMed + processor (what a stage-1 output or a converted checkpoint looks like)."""
    from hf_medvlm.testing import build_tiny_llava_med

    folder = tmp_path_factory.mktemp("tiny_llava_med")
    model, processor = build_tiny_llava_med()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_parts(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny CLIP vision encoder and a tiny Mistral causal LM (with tokenizer) saved separately: stage 1's inputs."""
    from transformers import AutoModel, AutoModelForCausalLM

    from hf_medvlm.testing import build_tiny_llava_med

    folder = tmp_path_factory.mktemp("tiny_parts")
    model, processor = build_tiny_llava_med()
    vision = AutoModel.from_config(model.config.vision_config)
    vision.save_pretrained(folder / "vision")
    text_config = model.config.text_config
    text_config.pad_token_id = None
    text_config.vocab_size = 32000  # the plain Llama-2 vocabulary; <image>/<pad> are added when assembling
    lm = AutoModelForCausalLM.from_config(text_config)
    lm.save_pretrained(folder / "lm")
    processor.tokenizer.save_pretrained(folder / "lm")
    return folder / "vision", folder / "lm"


def run_cli(*args: str, env: dict | None = None) -> None:
    """`hf-medvlm <args>` in process, with `env` as the whole environment if given; fails the test on a non-zero exit.

    The console entry itself is smoke-tested once per command in tests/test_cli_commands.py.
    """
    from hf_medvlm.cli import main

    with mock.patch.dict(os.environ, env or {}, clear=env is not None):
        code = main(list(args))
    assert code == 0, f"hf-medvlm {' '.join(args)} exited {code} (its error is in the captured stderr)"
