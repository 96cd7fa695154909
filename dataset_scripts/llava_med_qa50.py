r"""LLaVA-Med's chat evaluation set: 193 questions about 50 figures (conversation and detailed description) with GPT-4
reference answers, scored by an LLM judge (`hf-medvlm eval` with `task: chat`). Licence CC BY-NC 4.0, research only.

Raw file, from the LLaVA-Med repository (https://github.com/microsoft/LLaVA-Med):
`data/eval/llava_med_eval_qa50_qa.jsonl`. Its images are not in the public URL list, so the `image` column stays empty
unless you have them (pass --image_root).

Config written: `eval` (qa50 schema, split `test`).

    python dataset_scripts/llava_med_qa50.py --input_path llava_med_eval_qa50_qa.jsonl --output_dir data/llava_med_qa50

Every option: `python dataset_scripts/llava_med_qa50.py --help`. This runs `hf-medvlm prepare llava_med_qa50` (the same arguments,
converter, validation and card as every other source: `hf_medvlm.data.prepare`); add --push_to_hub --hub_repo_id
you/name to upload the folder.
"""

import sys

from hf_medvlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "llava_med_qa50", *sys.argv[1:]]))
