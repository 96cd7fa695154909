"""One module per `hf-medvlm <verb>`, run by `hf_medvlm/cli.py`: it parses its arguments and calls the library."""
