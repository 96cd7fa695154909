r"""PathVQA: pathology visual question answering (19,654 / 6,259 / 6,719 questions in train / validation / test; closed =
yes/no questions). Licence MIT, as stated on the Hub card.

Raw files, from the Hub dataset https://huggingface.co/datasets/flaviagiammarino/path-vqa (parquet files with the
images embedded). LLaVA-Med's own VQA files work too with --raw_format llava_med.

Configs written: `eval` (eval schema, split `test`) and `train_sft` (the train split as training conversations).

    python dataset_scripts/path_vqa.py --input_path path-vqa/test.parquet --config_name eval --output_dir data/path_vqa

Every option: `python dataset_scripts/path_vqa.py --help`. This runs `hf-medvlm prepare path_vqa` (the same arguments,
converter, validation and card as every other source: `hf_medvlm.data.prepare`); add --push_to_hub --hub_repo_id
you/name to upload the folder.
"""

import sys

from hf_medvlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "path_vqa", *sys.argv[1:]]))
