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
