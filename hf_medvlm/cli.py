"""`hf-medvlm`: the package's single command-line entry point.

Each command lives in ``hf_medvlm/commands/<command>.py`` exposing ``main(argv: list[str] | None) -> int``; this
file only dispatches, so that ``hf-medvlm <command> ...``, ``python -m hf_medvlm <command> ...`` and
``accelerate launch -m hf_medvlm <command> ...`` behave identically.

Exit codes: 0 success, 1 the work failed, 2 bad input (paths, configs, arguments).
Errors are printed as one sentence; pass ``--debug`` to see the traceback.
"""

from __future__ import annotations

import difflib
import importlib
import sys

# name -> (module implementing main(argv), one-line summary shown by `hf-medvlm --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "fetch-images": ("hf_medvlm.commands.fetch_images", "download PMC OA tarballs and extract the figures a dataset needs"),
    "prepare": ("hf_medvlm.commands.prepare", "convert a raw release (LLaVA-Med, PubMedVision, BioMed-VITAL, VQA sets) to Parquet"),
    "eval": ("hf_medvlm.commands.eval", "generate and score answers on a medical VQA benchmark (named protocols)"),
    "report": ("hf_medvlm.commands.report", "the papers' tables from results.json files, published numbers beside yours"),
    "push": ("hf_medvlm.commands.push", "upload a saved model folder or a Parquet dataset folder to the Hub"),
    "convert": (
        "hf_medvlm.commands.convert",
        "convert an original LLaVA-Med checkpoint (v1.5, v1.0, v1.0 delta) to LlavaMed or stock Llava",
    ),
    "train": ("hf_medvlm.commands.train", "supervised fine-tuning from a recipe (stage 1/2, LoRA/QLoRA, VQA fine-tunes)"),
    "merge-lora": ("hf_medvlm.commands.merge_lora", "merge a LoRA adapter into a full LlavaMed checkpoint"),
    "generate": ("hf_medvlm.commands.generate", "generate instruction data (LLaVA-Med, PubMedVision, BioMed-VITAL)"),
    "filter": ("hf_medvlm.commands.filter", "filter figure records (PubMedVision lexicon/size/classifier/dedup)"),
    "demo": ("hf_medvlm.commands.demo", "the whole curriculum on the embedded real demo set, pushed and reloaded (CPU, minutes)"),
    "select": ("hf_medvlm.commands.select", "BioMed-VITAL data selection: train the selector, score a dataset, pick top K%"),
}

USAGE = """usage: hf-medvlm <command> [options]   (hf-medvlm <command> --help for details)

Biomedical vision-language models on the Hugging Face stack.

commands:
{commands}

global options:
  --debug     show full tracebacks instead of one-line errors
  --version   print the package version

example:
  hf-medvlm --help
"""


class CLIError(Exception):
    """An error whose message is meant for the user as-is (bad path, bad config, bad argument)."""


def _usage() -> str:
    width = max((len(name) for name in COMMANDS), default=0)
    lines = [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines) or "  (none yet)")


def _run(name: str, argv: list[str]) -> int:
    try:
        return int(importlib.import_module(COMMANDS[name][0]).main(argv) or 0)
    except SystemExit as exit:  # `--help` (0) and argument errors (2), already printed as one line
        return exit.code if isinstance(exit.code, int) else int(exit.code is not None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from hf_medvlm import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        match = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        print(f"hf-medvlm: unknown command {name!r}{hint}; run `hf-medvlm --help` to list commands.", file=sys.stderr)
        return 2
    if debug:
        return _run(name, rest)
    try:
        return _run(name, rest)
    except (CLIError, ValueError, FileNotFoundError, NotADirectoryError, KeyError) as err:
        print(f"hf-medvlm {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hf-medvlm {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI's promise is one sentence, not a traceback
        print(f"hf-medvlm {name}: failed: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
