"""BioMed-VITAL data selection (seed 002 §3.2, §4.2): preference pairs (`data`), selector training (`training`),
scoring and top-K picking (`selection`), clinician annotation (`annotation`), the `select` stages (`stages`).

The selection model itself is `hf_medvlm.models.med_selector` (registered with AutoConfig/AutoModel on
`import hf_medvlm`). Nothing is imported here, so that `hf-medvlm select --help` does not load `datasets`."""
