"""`hf-medvlm tiny`: the newcomer's kit (the whole kit runs in tests/test_docs.py's `setup` chain)."""

from __future__ import annotations

import json

from hf_medvlm.cli import main as cli_main


def test_examples_only(tmp_path, capsys):
    assert cli_main(["tiny", "--no_models", "--examples", str(tmp_path / "ex"), "--pmc_url", "http://127.0.0.1:1",
                     "--output_dir", str(tmp_path / "kit")]) == 0
    assert not (tmp_path / "kit").exists() and (tmp_path / "ex" / "README.md").is_file()
    first = json.loads((tmp_path / "ex" / "llava_med_image_urls.jsonl").read_text().splitlines()[0])
    assert first["pmc_tar_url"].startswith("http://127.0.0.1:1/pub/pmc/")
    assert "example files" in capsys.readouterr().err


def test_kit_names_are_the_tiny_recipes_names(repo_root):
    from hf_medvlm.testing.kit import KIT_FOLDERS

    named = set()
    for recipe in (repo_root / "recipes" / "tiny").rglob("*.yaml"):
        text = recipe.read_text()
        named |= {name for name in KIT_FOLDERS if f": {name}\n" in text}
    assert named == {"tiny-llava-med", "tiny-clip", "tiny-lm", "tiny-smolvlm", "demo-data"}


def test_help_lists_tiny(capsys):
    assert cli_main(["--help"]) == 0
    assert "tiny" in capsys.readouterr().out
