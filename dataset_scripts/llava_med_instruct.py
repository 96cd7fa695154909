r"""LLaVA-Med stage 2: GPT-4-generated multi-turn instruction conversations about PubMed Central figures (10K, 60K and
60K with inline mentions, the paper's best). Licence CC BY-NC 4.0, research use only.

Raw files, from the LLaVA-Med repository (https://github.com/microsoft/LLaVA-Med, folder `data/`, git-LFS):
- `instruct/llava_med_instruct_10k.json`, `instruct/llava_med_instruct_60k.json`,
  `instruct/llava_med_instruct_60k_inline_mention.json`, one per config;
- `llava_med_image_urls.jsonl` for the images: `hf-medvlm fetch-images --urls_file llava_med_image_urls.jsonl
  --pair_ids_file <the json above> --output_dir pmc` (PMC Open Access tarballs).

Configs written: `10k`, `60k`, `60k_inline_mention` (training schema, split `train`); run once per file into the same
folder.

    python dataset_scripts/llava_med_instruct.py --input_path llava_med_instruct_60k_inline_mention.json \
        --image_root pmc/images --config_name 60k_inline_mention --output_dir data/llava_med_instruct --on_error skip

Every option: `python dataset_scripts/llava_med_instruct.py --help`. This runs `hf-medvlm prepare llava_med_instruct` (the same arguments,
converter, validation and card as every other source: `hf_medvlm.data.prepare`); add --push_to_hub --hub_repo_id
you/name to upload the folder.
"""

import sys

from hf_medvlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "llava_med_instruct", *sys.argv[1:]]))
