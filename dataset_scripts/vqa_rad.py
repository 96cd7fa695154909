"""Raw `vqa_rad` release files -> Hub-ready Parquet folder with a dataset card (optionally pushed).

The arguments dataclass (`hf_medvlm.data.prepare.PrepareArguments`), the per-record converter
(`hf_medvlm.data.prepare.SOURCES["vqa_rad"]`) and the card live in the package, so training and evaluation use the
same code; `hf-medvlm prepare vqa_rad ...` is equivalent. See dataset_scripts/README.md.

    python dataset_scripts/vqa_rad.py --help
"""

import sys

from hf_medvlm.commands.prepare import main

if __name__ == "__main__":
    sys.exit(main(["vqa_rad", *sys.argv[1:]]))
