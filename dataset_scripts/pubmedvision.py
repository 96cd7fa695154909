r"""PubMedVision (HuatuoGPT-Vision): 1.3M PubMed image-text pairs reformatted by GPT-4V into VQA, 1 to 29 images per
sample, English and Chinese. Licence Apache-2.0.

Raw files, from the Hub dataset https://huggingface.co/datasets/FreedomIntelligence/PubMedVision:
- `PubMedVision_Alignment_VQA.json`, `PubMedVision_InstructionTuning_VQA.json`, `PubMedVision_Chinese.json`;
- `images_0.zip` ... `images_19.zip` (~57 GB), unzipped into `images/` next to the JSON files
  (`hf download FreedomIntelligence/PubMedVision --repo-type dataset --local-dir pubmedvision`). Files missing from the
  zips are counted as `missing_image` with --on_error skip.

Configs written: `alignment_vqa`, `instruction_tuning_vqa`, `zh_alignment_vqa`, `zh_instruction_tuning_vqa` (training
schema, split `train`); the two Chinese configs read `PubMedVision_Chinese.json`.

    python dataset_scripts/pubmedvision.py --input_path pubmedvision/PubMedVision_Alignment_VQA.json \
        --config_name alignment_vqa --output_dir data/pubmedvision --on_error skip

Every option: `python dataset_scripts/pubmedvision.py --help`. This runs `hf-medvlm prepare pubmedvision` (the same arguments,
converter, validation and card as every other source: `hf_medvlm.data.prepare`); add --push_to_hub --hub_repo_id
you/name to upload the folder.
"""

import sys

from hf_medvlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "pubmedvision", *sys.argv[1:]]))
