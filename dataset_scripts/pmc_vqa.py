r"""PMC-VQA: 4-way multiple-choice VQA over PubMed Central figures (~227K questions, v1). Licence: see the upstream card;
the figures keep their own PMC Open Access licences, so check the terms before redistributing.

Raw files, from the Hub dataset https://huggingface.co/datasets/xmcmic/PMC-VQA: `train.csv`, `test.csv`,
`test_clean.csv` and `images.zip` (18.9 GB) extracted next to them.

Config written: `eval` (eval schema with `options` and `answer_label`, split `test`).

    python dataset_scripts/pmc_vqa.py --input_path pmc-vqa/test_clean.csv --output_dir data/pmc_vqa

Every option: `python dataset_scripts/pmc_vqa.py --help`. This runs `hf-medvlm prepare pmc_vqa` (the same arguments,
converter, validation and card as every other source: `hf_medvlm.data.prepare`); add --push_to_hub --hub_repo_id
you/name to upload the folder.
"""

import sys

from hf_medvlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "pmc_vqa", *sys.argv[1:]]))
