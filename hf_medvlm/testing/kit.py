"""The newcomer's kit behind `hf-medvlm tiny`: every tiny model and data folder the tiny recipes (`recipes/tiny/`) and
the documented walkthroughs name, written offline in seconds.

| folder | what | read by |
|---|---|---|
| `tiny-llava-med/` | a random LlavaMed + processor (`build_tiny_llava_med`) | `recipes/tiny/sft/stage2*.yaml`, `recipes/tiny/eval/demo.yaml` |
| `tiny-clip/`, `tiny-lm/` | a random CLIP vision tower (+ image processor) and causal LM (+ Llama-2 tokenizer) | `recipes/tiny/sft/stage1.yaml`; `filter train-classifier --vision_encoder` |
| `tiny-smolvlm/` | a random SmolVLM (Idefics3 classes) + processor with its own chat template (`build_tiny_smolvlm`) | `recipes/tiny/sft/instruct_vlm*.yaml` |
| `tiny-selector/` | a random BioMed-VITAL selection model + processor (`build_tiny_selector`) | `select train --model_name_or_path` |
| `tiny-sentence-encoder/` | a random sentence-transformers model (needs the `generation` extra) | `filter --dedup_model`, `generate select-demos --text_model` |
| `demo-data/` | the embedded real demo set (`write_demo_dataset`, needs the `demo` extra) | the tiny recipes' `dataset_name` |

The models are random: they check that commands connect, not what they learn.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import TINY_IMAGE_SIZE, build_tiny_llava_med, load_llama2_tokenizer, save_tiny_base_models
from .families import build_tiny_smolvlm
from .tiny_selector import build_tiny_selector

__all__ = ["KIT_FOLDERS", "write_tiny_kit"]

KIT_FOLDERS = ("tiny-llava-med", "tiny-clip", "tiny-lm", "tiny-smolvlm", "tiny-selector", "tiny-sentence-encoder",
               "demo-data")


def _save(model, processor, folder: Path) -> None:
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def _save_sentence_encoder(folder: Path, seed: int) -> str:
    """A 2-layer BERT with the Llama-2 tokenizer, mean-pooled and normalised (needs sentence-transformers)."""
    try:
        from sentence_transformers import SentenceTransformer, models
    except ImportError:
        return "skipped: pip install 'hf_medvlm[generation]' for sentence-transformers"
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = load_llama2_tokenizer()
    # Wide random weights: at BERT's usual 0.02 every caption embeds at cosine > 0.95 to every other.
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                        initializer_range=1.0)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        _save(BertModel(config), tokenizer, Path(scratch))
        modules = [models.Transformer(scratch), models.Pooling(config.hidden_size, "mean"), models.Normalize()]
        SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return "random sentence-transformers model"


def _write_demo_data(folder: Path) -> str:
    try:
        from ..data.demo import write_demo_dataset

        write_demo_dataset(folder)
    except ImportError as err:
        return f"skipped ({err}): pip install 'hf_medvlm[demo]'"
    return "the embedded real demo set: configs alignment, instruct (train) and eval (test)"


def write_tiny_kit(output_dir: str | Path = ".", seed: int = 0) -> dict[str, str]:
    """Write the kit's folders (`KIT_FOLDERS`) into `output_dir`; returns folder -> what was written (or why not)."""
    from transformers import CLIPImageProcessorPil

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    _save(*build_tiny_llava_med(seed=seed), output_dir / "tiny-llava-med")
    vision, _ = save_tiny_base_models(output_dir, seed=seed, names=("tiny-clip", "tiny-lm"))
    # An image processor next to the tower, so that it also serves as `filter train-classifier --vision_encoder`.
    size = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    CLIPImageProcessorPil(size={"shortest_edge": TINY_IMAGE_SIZE}, crop_size=size).save_pretrained(vision)
    _save(*build_tiny_smolvlm(seed=seed), output_dir / "tiny-smolvlm")
    _save(*build_tiny_selector(seed=seed, max_length=77), output_dir / "tiny-selector")  # CLIP's text length
    return {
        "tiny-llava-med": "random LlavaMed + processor (mistral_instruct template)",
        "tiny-clip": "random CLIP vision tower + image processor",
        "tiny-lm": "random Mistral-style causal LM + Llama-2 tokenizer",
        "tiny-smolvlm": "random SmolVLM + processor (a family other than LlavaMed, its own chat template)",
        "tiny-selector": "random BioMed-VITAL selection model + processor",
        "tiny-sentence-encoder": _save_sentence_encoder(output_dir / "tiny-sentence-encoder", seed),
        "demo-data": _write_demo_data(output_dir / "demo-data"),
    }
