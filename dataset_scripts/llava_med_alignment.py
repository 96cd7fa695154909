"""Raw `llava_med_alignment` release files -> Hub-ready Parquet folder with a dataset card (optionally pushed).

The arguments dataclass (`hf_medvlm.data.prepare.PrepareArguments`), the per-record converter
(`hf_medvlm.data.prepare.SOURCES["llava_med_alignment"]`) and the card live in the package, so training and evaluation use the
same code; `hf-medvlm prepare llava_med_alignment ...` is equivalent. See dataset_scripts/README.md.

    python dataset_scripts/llava_med_alignment.py --help
"""

import sys

from hf_medvlm.commands.prepare import main

if __name__ == "__main__":
    sys.exit(main(["llava_med_alignment", *sys.argv[1:]]))
