"""Batched eval generation vs a one-question-at-a-time loop (as LLaVA-Med's model_vqa.py does), on CPU.

Same tiny random LlavaMed, same questions and images, greedy decoding: prints whether the answers are identical and
the throughput of each. Example:

    python benchmarks/eval_generation.py --num_questions 64 --batch_size 16 --max_new_tokens 32
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from hf_medvlm.eval.generation import GenerationSettings, generate_answers
from hf_medvlm.testing import build_tiny_llava_med

QUESTIONS = [
    "Is there evidence of a pleural effusion?",
    "What organ is shown in this image?",
    "Where is the lesion located?",
    "Is the heart enlarged?",
    "What imaging modality was used to take this image?",
    "Are there any fractures visible in the ribs or the clavicles?",
    "Describe the abnormality.",
    "Is this a normal chest radiograph?",
]


def make_inputs(n: int, seed: int = 0):
    rng = np.random.RandomState(seed)
    images = [[Image.fromarray(rng.randint(0, 255, (64, 80, 3), dtype=np.uint8))] for _ in range(n)]
    questions = [QUESTIONS[i % len(QUESTIONS)] + f" (case {i})" for i in range(n)]
    return questions, images


def one_at_a_time(model, processor, questions, images, max_new_tokens):
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=1)
    return [generate_answers(model, processor, [q], [imgs], settings, progress=False)[0]
            for q, imgs in zip(questions, images)]


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_questions", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--hidden_size", type=int, default=64, help="text hidden size of the tiny model")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (shared machines: keep it small)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, processor = build_tiny_llava_med(
        text_config=dict(hidden_size=args.hidden_size, intermediate_size=2 * args.hidden_size, num_hidden_layers=2)
    )
    # Never stop early at EOS: both paths then generate exactly max_new_tokens, a fair token count.
    model.generation_config.eos_token_id = None
    questions, images = make_inputs(args.num_questions)
    one_at_a_time(model, processor, questions[:2], images[:2], 4)  # warm-up
    single, t_single = timed(one_at_a_time, model, processor, questions, images, args.max_new_tokens)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    batched, t_batched = timed(lambda: generate_answers(model, processor, questions, images, settings, progress=False))
    same = sum(a == b for a, b in zip(single, batched))
    print(f"questions: {args.num_questions}, max_new_tokens: {args.max_new_tokens}, torch threads: {args.threads}")
    print(f"{'loop':<28}{'seconds':>10}{'questions/s':>14}")
    print(f"{'one at a time (model_vqa)':<28}{t_single:>10.2f}{args.num_questions / t_single:>14.2f}")
    print(f"{f'batched (batch {args.batch_size})':<28}{t_batched:>10.2f}{args.num_questions / t_batched:>14.2f}")
    print(f"speed-up: {t_single / t_batched:.1f}x; identical answers: {same}/{args.num_questions}")
    return 0 if same == args.num_questions else 1


if __name__ == "__main__":
    raise SystemExit(main())
