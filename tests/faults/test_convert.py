"""`convert` killed between two weight shards, and while `--overwrite` swaps the new output for the old one."""

from __future__ import annotations

import pytest

from hf_medvlm.commands.convert import main as convert_main
from tests.faults.helpers import assert_no_temporaries, fault, kill_at, tree_bytes

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    from tests.models.original_builders import build_original

    root = tmp_path_factory.mktemp("convert_faults")
    build_original(root / "v1.5", "v1.5", root / "clip")
    whole = root / "whole"
    assert convert_main(_argv(root / "v1.5", whole)) == 0
    assert len(list(whole.glob("model-*.safetensors"))) > 2
    return root / "v1.5", whole


def _argv(src, out, *extra):
    return ["--input_dir", str(src), "--output_dir", str(out), "--max_shard_size", "100KB", *extra]


@pytest.mark.parametrize("point", ["between_shards", "overwrite_swap"])
def test_convert_killed_then_rerun(original, tmp_path, point):
    src, whole = original
    out = tmp_path / "out"
    if point == "between_shards":
        spec = fault("hf_medvlm.models.llava_med.convert_llava_med_to_hf:save_file", tmp_path, call=2, when="after")
        extra = []
    else:  # the earlier output has been moved aside, the new one not yet moved in
        assert convert_main(_argv(src, out)) == 0
        spec, extra = fault("os:replace", tmp_path, match=".tmp-"), ["--overwrite"]
    kill_at(["convert", *_argv(src, out, *extra)], spec)
    # (a) the output folder is absent or a whole conversion (the earlier one): never config.json beside part of the
    # weights
    assert not out.exists() or tree_bytes(out) == tree_bytes(whole)

    assert convert_main(_argv(src, out, *extra)) == 0
    assert tree_bytes(out) == tree_bytes(whole)  # (b)
    assert_no_temporaries(tmp_path)  # (c) no `.out.tmp-*` / `.out.old-*` beside the output
