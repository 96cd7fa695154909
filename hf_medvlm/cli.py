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

# command -> its one-line summary in `hf-medvlm --help`; `merge-lora` runs `hf_medvlm.commands.merge_lora.main(argv)`
COMMANDS: dict[str, str] = {
    "fetch-images": "download PMC OA tarballs and extract the figures a dataset needs",
    "prepare": "convert a raw release (LLaVA-Med, PubMedVision, BioMed-VITAL, VQA sets) to Parquet",
    "eval": "generate and score answers on a medical VQA benchmark (named protocols)",
    "report": "the papers' tables from results.json files, published numbers beside yours",
    "push": "upload a saved model folder or a Parquet dataset folder to the Hub",
    "convert": "convert an original LLaVA-Med checkpoint (v1.5, v1.0, v1.0 delta) to LlavaMed or stock Llava",
    "train": "supervised fine-tuning from a recipe (stage 1/2, LoRA/QLoRA, VQA fine-tunes)",
    "merge-lora": "merge a LoRA adapter into a full LlavaMed checkpoint",
    "generate": "generate instruction data (LLaVA-Med, PubMedVision, BioMed-VITAL)",
    "filter": "filter figure records (PubMedVision lexicon/size/classifier/dedup)",
    "demo": "the whole curriculum on the embedded real demo set, pushed and reloaded (CPU, minutes)",
    "select": "BioMed-VITAL data selection: train the selector, score a dataset, pick top K%",
    "tiny": "write the tiny models, demo data and example release files the walkthroughs use",
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


def _run(name: str, argv: list[str]) -> int:
    try:
        return int(importlib.import_module(f"hf_medvlm.commands.{name.replace('-', '_')}").main(argv) or 0)
    except SystemExit as exit:  # `--help` (0) and argument errors (2), already printed as one line
        return exit.code if isinstance(exit.code, int) else int(exit.code is not None)


def _needs_the_hub_offline(err: BaseException) -> str | None:
    """In offline mode (HF_HUB_OFFLINE=1), a failure that only the Hub could have avoided (a name that is no local
    folder and is not cached) as one sentence; None for any other failure."""
    from huggingface_hub import constants

    if not constants.is_offline_mode():
        return None
    seen, cause = [], err
    while cause is not None and len(seen) < 10:
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    names = {type(e).__name__ for e in seen}
    if not names & {"OfflineModeIsEnabled", "LocalEntryNotFoundError"} and "OfflineModeIsEnabled" not in str(err):
        return None
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return (f"offline mode is on (HF_HUB_OFFLINE=1) and this needs the Hub ({first}); give a local folder or a "
            "cached name, or unset HF_HUB_OFFLINE.")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        width = max(map(len, COMMANDS))
        print(USAGE.format(commands="\n".join(f"  {name.ljust(width)}  {line}" for name, line in COMMANDS.items())))
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
        refusal = _needs_the_hub_offline(err)
        if refusal:
            print(f"hf-medvlm {name}: error: {refusal}", file=sys.stderr)
            return 2
        message = " ".join(str(err).splitlines())  # one line, whatever the library's message looks like
        print(f"hf-medvlm {name}: failed: {type(err).__name__}: {message} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
