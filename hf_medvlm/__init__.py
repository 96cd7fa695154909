"""hf_medvlm: biomedical vision-language models (LLaVA-Med, PubMedVision, BioMed-VITAL) on the Hugging Face stack.

Importing the package registers the LlavaMed classes with the transformers Auto classes (once, idempotently).
"""

__version__ = "0.1.0"
