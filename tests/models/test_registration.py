"""`import hf_medvlm` registers the Auto classes in whichever order things are imported (fresh interpreter each).

The model and processor classes are registered lazily (see `hf_medvlm.models`), so each order is checked in its own
process: an in-process test would find them registered by earlier tests.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r'''
import json, sys
scenario, tiny, original = sys.argv[1:4]
out = {}
if scenario == "package_first":
    import hf_medvlm
    out["model_code_after_import"] = sorted(m for m in sys.modules if ".modeling_" in m and "hf_medvlm" in m)
    from transformers import AutoModelForImageTextToText, AutoProcessor
elif scenario == "transformers_first":
    from transformers import AutoModelForImageTextToText, AutoProcessor
    import hf_medvlm
elif scenario == "stock_llava_first":
    import hf_medvlm
    from transformers import AutoModelForImageTextToText, AutoProcessor, LlavaForConditionalGeneration
elif scenario == "model_only":  # no AutoProcessor: nothing imports ProcessorMixin before the lookup
    import hf_medvlm
    from transformers import AutoModelForImageTextToText
elif scenario == "config_only":
    import hf_medvlm
    from transformers import AutoConfig
    out["config"] = type(AutoConfig.from_pretrained(tiny)).__name__
    out["original_config"] = type(AutoConfig.from_pretrained(original)).__name__
    print(json.dumps(out))
    sys.exit(0)
out["model"] = type(AutoModelForImageTextToText.from_pretrained(tiny)).__name__
if scenario != "model_only":
    out["processor"] = type(AutoProcessor.from_pretrained(tiny)).__name__
if scenario == "package_first":  # an original v1.5 directory (`model_type "llava_mistral"`) loads directly
    out["original_model"] = type(AutoModelForImageTextToText.from_pretrained(original)).__name__
    out["original_processor"] = type(AutoProcessor.from_pretrained(original)).__name__
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, tiny_llava_med):
    folder = tmp_path_factory.mktemp("tiny_llava_med")
    model, processor = tiny_llava_med
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _run(scenario: str, tiny, original) -> dict:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, scenario, str(tiny), str(original)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("scenario", ["package_first", "transformers_first", "stock_llava_first", "model_only"])
def test_auto_classes_resolve_in_any_import_order(scenario, tiny_folder, originals):
    out = _run(scenario, tiny_folder, originals["root"] / "v1.5")
    assert out["model"] == "LlavaMedForConditionalGeneration"
    if scenario != "model_only":
        assert out["processor"] == "LlavaMedProcessor"
    if scenario == "package_first":
        assert out["model_code_after_import"] == []  # registered later, when first needed
        assert out["original_model"] == "LlavaMedForConditionalGeneration"
        assert out["original_processor"] == "LlavaMedProcessor"


def test_auto_config_alone(tiny_folder, originals):
    out = _run("config_only", tiny_folder, originals["root"] / "v1.5")
    assert out == {"config": "LlavaMedConfig", "original_config": "LlavaMedOriginalConfig"}
