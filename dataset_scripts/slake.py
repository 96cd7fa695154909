r"""SLAKE: bilingual (English / Chinese) medical VQA; the English questions are kept (4,919 / 1,053 / 1,061 in train /
validation / test). Licence CC BY 4.0.

Raw files, from the Hub dataset https://huggingface.co/datasets/BoKelvin/SLAKE: `train.json`, `validate.json`,
`test.json` and `imgs.zip` extracted next to them (images at `imgs/<img_name>`). LLaVA-Med's own VQA files work too
with --raw_format llava_med.

Configs written: `eval` (eval schema, split `test`) and `train_sft` (the train split as training conversations).

    python dataset_scripts/slake.py --input_path slake/test.json --config_name eval --output_dir data/slake

Every option: `python dataset_scripts/slake.py --help`. This runs `hf-medvlm prepare slake` (the same arguments,
converter, validation and card as every other source: `hf_medvlm.data.prepare`); add --push_to_hub --hub_repo_id
you/name to upload the folder.
"""

import sys

from hf_medvlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "slake", *sys.argv[1:]]))
