r"""LLaVA-Med stage 1 (biomedical concept alignment): ~500K PubMed Central figure-caption pairs, one short instruction
and the caption as the answer. Licence CC BY-NC 4.0, research use only.

Raw files, from the LLaVA-Med repository (https://github.com/microsoft/LLaVA-Med, folder `data/`, git-LFS):
- `alignment/llava_med_alignment_500k.json` (342 MiB), the records;
- `llava_med_image_urls.jsonl`, the PMC Open Access tarball of every figure. Fetch only the figures this file needs
  with `hf-medvlm fetch-images --urls_file llava_med_image_urls.jsonl --pair_ids_file llava_med_alignment_500k.json
  --output_dir pmc` (tarballs from https://ftp.ncbi.nlm.nih.gov/pub/pmc/oa_package/; some are gone, reported in
  pmc/failures.jsonl and counted here as `missing_image` with --on_error skip).

Config written: `500k` (training schema, split `train`).

    python dataset_scripts/llava_med_alignment.py --input_path llava_med_alignment_500k.json \
        --image_root pmc/images --output_dir data/llava_med_alignment --on_error skip

Every option: `python dataset_scripts/llava_med_alignment.py --help`. This runs `hf-medvlm prepare llava_med_alignment` (the same arguments,
converter, validation and card as every other source: `hf_medvlm.data.prepare`); add --push_to_hub --hub_repo_id
you/name to upload the folder.
"""

import sys

from hf_medvlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "llava_med_alignment", *sys.argv[1:]]))
