"""Upload a saved model folder (weights, processor, remote code, card) or a Parquet dataset folder (subsets + card)
to the Hugging Face Hub. Needs a token with write access in HF_TOKEN (or `hf auth login`); HF_ENDPOINT selects another
Hub server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..hub import push_dataset_folder, push_model
from .parser import parse

EPILOG = """examples:
  hf-medvlm push --folder out/llava-med-tiny --repo_id me/llava-med-tiny --revision v0.1
  hf-medvlm push --folder data/pmc_vqa_parquet --repo_id me/pmc-vqa --repo_type dataset
"""


@dataclass
class PushArguments:
    folder: str = field(metadata={"help": "saved model folder (config.json + weights) or Parquet dataset folder"})
    repo_id: str = field(metadata={"help": "target repo, `namespace/name`"})
    repo_type: str = field(default="auto", metadata={
        "help": "`model`, `dataset`, or `auto` (model if the folder has config.json, else dataset)",
        "choices": ["auto", "model", "dataset"]})
    revision: str | None = field(default=None, metadata={"help": "branch to push to (created if missing)"})
    private: bool | None = field(default=None, metadata={"help": "create the repo as private"})
    commit_message: str | None = field(default=None, metadata={"help": "commit message"})


def main(argv: list[str] | None = None) -> int:
    (args,) = parse((PushArguments,), argv, prog="hf-medvlm push", doc=__doc__, epilog=EPILOG)
    folder = Path(args.folder)
    repo_type = args.repo_type
    if repo_type == "auto":
        is_model = (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()
        repo_type = "model" if is_model else "dataset"
    push = push_model if repo_type == "model" else push_dataset_folder
    info = push(folder, args.repo_id, revision=args.revision, private=args.private,
                commit_message=args.commit_message)
    print(f"Pushed {repo_type} {folder} to {args.repo_id}" + (f"@{args.revision}" if args.revision else "")
          + f": {info}")
    return 0
