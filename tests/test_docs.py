"""The docs cannot drift from the code.

- `docs/walkthroughs.md`: every `<!-- chain: ... -->` block runs as written, offline (`HF_HUB_OFFLINE=1`), against
  loopback servers, in one subprocess (`tests/run_walkthroughs.py`); one test per chain.
- Every other `hf-medvlm` command in README.md, docs/ and recipes/README.md is parsed as written (arguments, recipe
  keys, recipe files), without running it. (docs/reproduce.md's hand-offs between its commands and the recipes:
  tests/test_reproduce_doc.py.)
"""

from __future__ import annotations

import functools
import json
import re
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.conftest import HUB_TEST_TOKEN, REPO_ROOT
from tests.doc_blocks import doc_blocks, hf_medvlm_argv, shell_commands

WALKTHROUGHS = REPO_ROOT / "docs" / "walkthroughs.md"
CHAIN_DOCS = [WALKTHROUGHS]
CHAINS = ["setup", "releases", "llava-med", "pubmedvision", "self-instruct", "biomed-vital", "report"]
DOCS = [REPO_ROOT / "README.md", REPO_ROOT / "recipes" / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


# ------------------------------------------------------------------------------------------- the walkthroughs


@pytest.fixture(scope="session")
def walkthroughs(hub_server, tmp_path_factory):
    """Run every chain once: (results per chain, the folder they ran in, the log)."""
    from hf_medvlm.testing.openai_server import CannedResponder, start_openai_server

    work = tmp_path_factory.mktemp("walkthroughs")
    (work / "recipes").symlink_to(REPO_ROOT / "recipes")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(work / "examples" / "pmc_mirror"))
    handler.log_message = lambda *args: None
    pmc = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=pmc.serve_forever, daemon=True).start()
    log, results = work / "walkthroughs.log", work / "results.json"
    with start_openai_server(CannedResponder()) as llm:
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_TOKEN=HUB_TEST_TOKEN, LLM_URL=llm.url,
                   PMC_URL=f"http://127.0.0.1:{pmc.server_address[1]}")
        with log.open("w") as out:
            subprocess.run([sys.executable, "-m", "tests.run_walkthroughs", *map(str, CHAIN_DOCS), str(results)],
                           cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800, check=False)
    pmc.shutdown()
    return json.loads(results.read_text()) if results.exists() else {}, work, log.read_text()


def _chain_log(log: str, chain: str) -> str:
    lines = [line for line in log.splitlines() if f"### [{chain}]" in line or not line.startswith("### [")]
    return "\n".join(lines[-60:])


def test_walkthrough_chains_are_the_ones_tested():
    chains = {b.chain for doc in CHAIN_DOCS for b in doc_blocks(doc) if b.chain}
    assert sorted(chains) == sorted(CHAINS)


@pytest.mark.integration
@pytest.mark.parametrize("chain", CHAINS)
def test_walkthrough_runs_as_written(chain, walkthroughs, hub_server):
    results, work, log = walkthroughs
    assert chain in results, f"the walkthrough runner did not get to {chain!r}:\n{log[-4000:]}"
    assert results[chain]["ok"], f"{results[chain]['failed']}\n{_chain_log(log, chain)}"
    CHECKS[chain](work, hub_server)


def _check_setup(work: Path, hub) -> None:
    for name in ("tiny-llava-med", "tiny-clip", "tiny-lm", "tiny-selector", "tiny-sentence-encoder", "demo-data"):
        assert (work / name).is_dir(), name
    assert (work / "examples" / "README.md").is_file()


def _check_releases(work: Path, hub) -> None:
    from datasets import load_dataset

    data = work / "examples" / "data"
    for folder, config, split in (("pubmedvision", "alignment_vqa", "train"), ("biomed_vital", "150k", "train"),
                                  ("biomed_vital", "60k", "train"), ("slake", "eval", "test"),
                                  ("slake", "train_sft", "train"), ("path_vqa", "eval", "test"),
                                  ("path_vqa", "train_sft", "train"), ("vqa_rad", "train_sft", "train")):
        assert len(load_dataset(str(data / folder), name=config, split=split)) > 0, (folder, config)


def _check_llava_med(work: Path, hub) -> None:
    assert len(list((work / "pmc" / "images").glob("*.jpg"))) == 8
    stage2 = yaml.safe_load((work / "runs" / "tiny-stage2" / "resolved_config.yaml").read_text())
    assert stage2["model_name_or_path"] == "runs/tiny-stage1"  # stage 2 started from stage 1's output
    qa50 = json.loads((work / "runs" / "tiny-eval" / "qa50" / "results.json").read_text())
    assert qa50["scores"]["llava_med_qa50"]["overall"]["n"] == 8
    vqa = json.loads((work / "runs" / "tiny-eval" / "vqa_rad" / "results.json").read_text())
    assert set(vqa["scores"]) == {"llava_med", "strict"}
    assert hub.commit_count("me/tiny-llava-med") >= 1 and hub.commit_count("me/vqa-rad", "dataset") >= 2


def _check_pubmedvision(work: Path, hub) -> None:
    report = json.loads((work / "out" / "filtered" / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["medical_terms", "resolution", "medical_image", "dedup"]
    kept = [json.loads(line) for line in (work / "out" / "filtered" / "kept.jsonl").read_text().splitlines()]
    assert kept and all(p.startswith("../../examples/figures/") for r in kept for p in r["images"])
    mc = json.loads((work / "runs" / "tiny-eval" / "pmc_vqa" / "results.json").read_text())
    assert "huatuo_mc" in mc["scores"]


def _check_self_instruct(work: Path, hub) -> None:
    readme = (work / "data" / "llava_med_self_instruct" / "README.md").read_text()
    assert "generated by `hf-medvlm generate`" in readme and "license: other" in readme


def _check_biomed_vital(work: Path, hub) -> None:
    report = json.loads((work / "runs" / "biomed-vital-selected-clusters" / "selection_report.json").read_text())
    assert report["strategy"] == "clusters" and (work / report["plot"]).is_file()
    assert (work / "runs" / "tiny-biomed-vital" / "model.safetensors").is_file()


def _check_report(work: Path, hub) -> None:
    report = (work / "runs" / "tiny-report" / "report.md").read_text()
    for source in ("tiny-eval/vqa_rad/results.json", "tiny-eval/qa50/results.json", "tiny-eval/pmc_vqa/results.json"):
        assert source in report, source
    assert (work / "runs" / "tiny-report" / "report.png").is_file()


CHECKS = {"setup": _check_setup, "releases": _check_releases, "llava-med": _check_llava_med,
          "pubmedvision": _check_pubmedvision, "self-instruct": _check_self_instruct, "biomed-vital": _check_biomed_vital,
          "report": _check_report}


# ---------------------------------------------------------------------------------- every command parses


class _Parsed(BaseException):
    """Raised right after a command's arguments parsed, so that nothing runs (BaseException: the CLI's error
    handling lets it through)."""


def documented_commands() -> list[tuple[str, list[str]]]:
    """(doc, argv) of every `hf-medvlm` command in the docs' bash blocks; placeholders (`...`, `<recipe.yaml>`) and
    blocks marked `not run` are left out."""
    found = []
    for doc in DOCS:
        for block in doc_blocks(doc):
            if block.lang != "bash" or not block.runnable:
                continue
            for command in shell_commands(block.code):
                argv = hf_medvlm_argv(command)
                if argv is not None and not any("..." in a or re.search(r"<[^>]+>", a) for a in argv):
                    found.append((doc.name, argv))
    return found


def _parse_eval_or_select(argv: list[str]) -> None:
    """`eval` and `select` check their arguments together after parsing, without running anything: run that too."""
    name, rest = argv[0], argv[1:]
    if name == "eval":
        from hf_medvlm.commands.eval import parse_args
    else:
        from hf_medvlm.commands.select import parse_args
    parse_args(rest)


@pytest.mark.parametrize("doc, argv", documented_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_documented_command_parses(doc, argv, monkeypatch):
    from hf_medvlm.cli import main
    from hf_medvlm.commands.parser import CommandParser

    monkeypatch.chdir(REPO_ROOT)  # recipes are named relative to the checkout
    if argv[0].startswith("-") or "--help" in argv or "-h" in argv:
        return
    if argv[0] in ("eval", "select"):
        _parse_eval_or_select(argv)
        return
    if argv[0] == "train":  # bf16 recipes need a GPU to validate; check_args (QLoRA needs CUDA) is not reached
        argv = [*argv, "--use_cpu", "true"]
    original = CommandParser.parse

    def parse_then_stop(self, *args, **kwargs):
        raise _Parsed(original(self, *args, **kwargs))

    monkeypatch.setattr(CommandParser, "parse", parse_then_stop)
    with pytest.raises(_Parsed):
        code = main(argv)
        pytest.fail(f"{doc}: `hf-medvlm {' '.join(argv)}` exited {code} before its arguments parsed")
