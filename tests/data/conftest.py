"""Fixtures for the data tests: the demo set is built once per session (about a second)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_facts():
    pytest.importorskip("pydicom")
    pytest.importorskip("skimage")
    from hf_medvlm.data.demo import load_demo_facts

    return load_demo_facts()


@pytest.fixture(scope="session")
def demo_records(demo_facts):
    from hf_medvlm.data.demo import build_demo_records

    return build_demo_records(facts=demo_facts)


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory):
    pytest.importorskip("pydicom")
    from hf_medvlm.data.demo import write_demo_dataset

    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "demo_set")


def write_jpeg(path, seed: int = 0, size=(24, 20)):
    """A small real JPEG file (random pixels) at `path`."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    Image.fromarray(rng.randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="JPEG")
    return path


def write_truncated_jpeg(path):
    write_jpeg(path, seed=99, size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path
