r"""VQA-RAD: radiology visual question answering (2,248 questions about 315 images, open and closed). Licence CC0 1.0.

Raw files, either:
- the VQA-RAD release (Lau et al., 2018): `VQA_RAD Dataset Public.json` and its image folder (both splits in one file;
  `phrase_type` `test_*` marks the test questions);
- or the Hub parquet files of https://huggingface.co/datasets/flaviagiammarino/vqa-rad;
- or LLaVA-Med's own VQA files (`train.json` / `test.json` with `answer_type`) with --raw_format llava_med.

Configs written: `eval` (eval schema, split `test`, scored by `hf-medvlm eval`) and `train_sft` (the train split as
one-turn training conversations, for the recipes under recipes/llava-med-v1.5-mistral-7b/vqa/).

    python dataset_scripts/vqa_rad.py --input_path "VQA_RAD Dataset Public.json" --config_name eval \
        --output_dir data/vqa_rad

Every option: `python dataset_scripts/vqa_rad.py --help`. This runs `hf-medvlm prepare vqa_rad` (the same arguments,
converter, validation and card as every other source: `hf_medvlm.data.prepare`); add --push_to_hub --hub_repo_id
you/name to upload the folder.
"""

import sys

from hf_medvlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "vqa_rad", *sys.argv[1:]]))
