r"""BioMed-VITAL: clinician-preference-aligned instruction data (60K from the selection stage, 80K from both stages, and
the 150K / 210K mixes that add LLaVA-Med's 10K / 60K data). The stricter of the conflicting licence statements, CC BY-NC
4.0 (research use only), is applied.

Raw files, from the Hub dataset https://huggingface.co/datasets/mao1207/BioMed-VITAL-instructions:
- `BioMed-VITAL-instructions-{60K,80K,150K,210K}.json`, one per config;
- `PMC_image_urls.jsonl` (the same list as LLaVA-Med's `llava_med_image_urls.jsonl`): images are not hosted, fetch them
  with `hf-medvlm fetch-images --urls_file PMC_image_urls.jsonl --pair_ids_file <the json above> --output_dir pmc`.

Configs written: `60k`, `80k`, `150k`, `210k` (training schema, split `train`).

    python dataset_scripts/biomed_vital.py --input_path BioMed-VITAL-instructions-80K.json --image_root pmc/images \
        --config_name 80k --output_dir data/biomed_vital --on_error skip

Every option: `python dataset_scripts/biomed_vital.py --help`. This runs `hf-medvlm prepare biomed_vital` (the same arguments,
converter, validation and card as every other source: `hf_medvlm.data.prepare`); add --push_to_hub --hub_repo_id
you/name to upload the folder.
"""

import sys

from hf_medvlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "biomed_vital", *sys.argv[1:]]))
