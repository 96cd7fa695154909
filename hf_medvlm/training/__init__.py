"""Training: model assembly and freezing, training data, the modality-grouped sampler, the length pass that fits rows
to `max_length` before training, the SFT trainer subclass, the run flow behind `hf-medvlm train` (`sft.run_sft`), run
outputs (resolved config, card, push) and LoRA merging."""
