"""One module per `hf-medvlm <verb>`: it parses its arguments dataclasses and calls the library.

`hf_medvlm/cli.py` dispatches `hf-medvlm <verb>` (and `python -m hf_medvlm <verb>`, `accelerate launch -m hf_medvlm
<verb>`) to `hf_medvlm.commands.<verb>.main(argv)`.
"""
