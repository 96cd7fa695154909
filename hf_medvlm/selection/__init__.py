"""BioMed-VITAL data selection (seed 002 §3.2, §4.2): preference pairs, selector training, scoring and top-K picking.

The selection model itself is `hf_medvlm.models.med_selector` (registered with AutoConfig/AutoModel on
`import hf_medvlm`)."""

from .data import (
    PAIR_FEATURES, SkipReport, load_pairs, pairs_from_clinician_choices, pairs_from_ratings, validate_pairs,
)

__all__ = [
    "PAIR_FEATURES",
    "SkipReport",
    "load_pairs",
    "pairs_from_clinician_choices",
    "pairs_from_ratings",
    "validate_pairs",
]
