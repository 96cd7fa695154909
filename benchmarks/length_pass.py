"""The length pass (`fit_to_length`) vs building each row with the collator, on a PubMedVision-shaped stand-in.

Stand-in rows (documented, not measured on the real files, whose images are not available offline): one round; the
image count is 1 for 78% of rows (PubMedVision's Alignment set is about 22% multi-image) and otherwise 2 + a geometric
count (p 0.35), capped at 29; the answer is log-normal text with median 180 words. Real Llama-2 tokenizer, LlavaMed
processor at 336 px / patch 14 (576 tokens per image), `vicuna_v1` template, max_length 2048. The images are tiny
PNGs: the pass never decodes them, the collator does (its time here is a lower bound for real 336 px images).

    python -m benchmarks.length_pass [--rows 20000] [--collate_rows 100] [--num_proc N]     (from the repository root)
"""

from __future__ import annotations

import argparse
import io
import time

import datasets
import numpy as np
from PIL import Image

from hf_medvlm.data.schema import TRAINING_FEATURES
from hf_medvlm.models.llava_med import LlavaMedProcessor
from hf_medvlm.testing import load_llama2_tokenizer
from hf_medvlm.training.length_policy import fit_to_length

WORDS = "the lesion shows a hyperintense signal in the left lobe with mild oedema and no mass effect".split()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 60, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def stand_in_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    image = {"bytes": png_bytes(), "path": "x.png"}
    multi = rng.random(n) >= 0.78
    counts = np.where(multi, np.minimum(2 + rng.geometric(0.35, n) - 1, 29), 1)
    words = np.clip(rng.lognormal(np.log(180), 0.5, n), 20, 900).astype(int)
    rows = []
    for i, (k, w) in enumerate(zip(counts.tolist(), words.tolist())):
        answer = " ".join(WORDS[j % len(WORDS)] for j in range(w))
        question = [{"type": "image", "text": None}] * k + [{"type": "text", "text": "Describe the images."}]
        rows.append({"id": f"Alignment_VQA_{i}", "images": [image] * k, "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--collate_rows", type=int, default=100)
    parser.add_argument("--num_proc", type=int, default=None)
    args = parser.parse_args(argv)
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    processor = LlavaMedProcessor.from_tokenizer(load_llama2_tokenizer(), image_size=336, patch_size=14,
                                                 chat_template="vicuna_v1")
    features = datasets.Features({k: TRAINING_FEATURES[k] for k in ("id", "images", "messages")})
    dataset = datasets.Dataset.from_list(stand_in_rows(args.rows), features=features)
    for policy in ("skip", "trim_rounds"):
        start = time.perf_counter()
        _, report = fit_to_length(dataset, processor, max_length=2048, policy=policy, num_proc=args.num_proc)
        elapsed = time.perf_counter() - start
        print(f"length pass ({policy}): {args.rows} rows in {elapsed:.1f} s = {args.rows / elapsed:,.0f} rows/s; "
              f"kept {report.rows_out} ({report.rows_out / args.rows:.1%}), {report.skipped} skipped")
    collator = DataCollatorForVisionLanguageModeling(processor)
    sample = dataset.select(range(args.collate_rows))
    start = time.perf_counter()
    for row in sample:
        collator([row])
    elapsed = time.perf_counter() - start
    print(f"collator, one row at a time (decodes and resizes images): {args.collate_rows} rows in {elapsed:.1f} s = "
          f"{args.collate_rows / elapsed:,.0f} rows/s")


if __name__ == "__main__":
    main()
