import json

import numpy as np
import pytest
from PIL import Image

CAPTIONS = [
    ("Axial contrast-enhanced CT of the abdomen showing a hypodense hepatic lesion.", ["The abscess was drained."]),
    ("Chest radiograph with cardiomegaly and a right pleural effusion.", ["He required intubation (Figure 2)."]),
    ("Brain MRI, T2-weighted, showing a hyperintense lesion in the left temporal lobe.", []),
    ("H&E histology of a lymph node with metastatic adenocarcinoma.", ["Nodal metastases were found."]),
    ("Gross specimen of a resected kidney with a large renal cell carcinoma.", ["See Figure 4."]),
]


def _image(seed: int, size: int = 40) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


@pytest.fixture
def figure_records(tmp_path):
    """Five figure records (the last one with two images) as JSONL with PNG files next to it."""
    (tmp_path / "images").mkdir()
    lines = []
    for i, (caption, mentions) in enumerate(CAPTIONS):
        names = [f"images/fig{i}_{k}.png" for k in range(2 if i == 4 else 1)]
        for k, name in enumerate(names):
            _image(10 * i + k).save(tmp_path / name)
        lines.append({"id": f"fig{i}", "images": names, "caption": caption, "mentions": mentions,
                      "fig_label": f"Figure {i + 1}", "domain": ["ct_scan", "chest_xray", "mri", "histology", "gross"][i]})
    path = tmp_path / "figures.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def fast_backend():
    """An OpenAIChatBackend factory with a short timeout and few retries, so failure paths end quickly."""
    from hf_medvlm.llm import OpenAIChatBackend

    def make(url, **kwargs):
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("max_retries", 3)
        return OpenAIChatBackend(url, model="loopback", **kwargs)

    return make
