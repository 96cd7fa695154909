"""Datasets: the shared training/eval schemas, converters from every raw release format, the Parquet writer and
dataset cards, the embedded real demo set and the PMC image fetcher.

Submodules are imported on use (`from hf_medvlm.data.demo import build_demo_splits`) so that importing the
package stays cheap.
"""
