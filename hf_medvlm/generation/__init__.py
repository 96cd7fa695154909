"""Instruction-data generation and filtering: LLaVA-Med self-instruct, PubMedVision filtering and reformatting,
BioMed-VITAL demonstration selection, generation and model-based rating."""
