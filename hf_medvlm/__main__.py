import sys

from hf_medvlm.cli import main

sys.exit(main())
