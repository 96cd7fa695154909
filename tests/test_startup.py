"""`import hf_medvlm`, `hf-medvlm --help` and every `hf-medvlm <command> --help` import no model code.

One fresh interpreter runs them one after the other and reports what is loaded after each: a module present after a
step was imported by that step or an earlier one. Timing is `benchmarks/startup.py`'s job, not a test's.
"""

from __future__ import annotations

import json
import subprocess
import sys

from hf_medvlm.cli import COMMANDS

SCRIPT = r'''
import contextlib, io, json, sys

def loaded():
    return {
        "hf_medvlm model modules": sorted(m for m in sys.modules if m.startswith("hf_medvlm.models.")
                                          and (".modeling_" in m or m.endswith(".original_checkpoint"))),
        "transformers model modules": sorted(m for m in sys.modules if m.startswith("transformers.models.")
                                             and ".modeling_" in m and not m.endswith(".modeling_auto")),
        "PreTrainedModel / ProcessorMixin": [m for m in ("transformers.modeling_utils", "transformers.processing_utils")
                                             if m in sys.modules],
    }

import hf_medvlm
report = {"import hf_medvlm": loaded()}
from hf_medvlm.cli import main
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv + ["--help"])
    report[" ".join(["hf-medvlm", *argv, "--help"])] = dict(loaded(), exit_code=code)
print(json.dumps(report))
'''

LIGHT = [[], ["convert"], ["prepare"], ["prepare", "vqa_rad"], ["fetch-images"], ["merge-lora"], ["eval"], ["report"],
         ["generate"], ["generate", "llava-med"], ["filter"], ["filter", "pubmedvision"], ["select"],
         ["select", "score"], ["select", "pick"], ["push"], ["demo"]]
# TRL's SFTConfig and the selector's arguments are `TrainingArguments`, whose module imports peft, and peft imports
# `PreTrainedModel` and a transformers model (bloom): unavoidable there, but this package's model code still stays out.
TRAINING_ARGUMENTS = [["train"], ["select", "train"]]


def test_help_imports_no_model_code():
    assert {argv[0] for argv in LIGHT + TRAINING_ARGUMENTS if argv} == set(COMMANDS)  # every command is checked
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(LIGHT + TRAINING_ARGUMENTS)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    nothing = {"hf_medvlm model modules": [], "transformers model modules": [], "PreTrainedModel / ProcessorMixin": []}
    training_arguments = {" ".join(["hf-medvlm", *argv, "--help"]) for argv in TRAINING_ARGUMENTS}
    for step, modules in report.items():  # in order: the TrainingArguments commands come last
        assert modules.pop("exit_code", 0) == 0, step
        if step in training_arguments:
            assert modules["hf_medvlm model modules"] == [], step
        else:
            assert modules == nothing, step
