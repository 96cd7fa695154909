"""The one argument parser of every `hf-medvlm` command: TRL's `TrlParser` (dataclass fields become `--flags`,
`--config recipe.yaml` sets their defaults) with `--help` showing every default, ONE-line argument errors (exit 2)
naming the flag or recipe key with the closest known flag, and sub-commands given first or by the recipe's `command:`
key. The conventions it implements: docs/cli.md, "Conventions shared by every command".
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from trl import TrlParser

__all__ = ["CommandParser", "SubCommand", "parse", "parse_subcommand"]

USAGE = "%(prog)s [--config RECIPE.yaml] [--KEY VALUE ...]"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the description's and examples' line breaks."""


class CommandParser(TrlParser):
    """`TrlParser` with one-line errors that name the flag or recipe key and suggest the closest known flag."""

    def __init__(self, dataclass_types, *, prog: str, description: str | None = None, epilog: str | None = None,
                 subcommand: bool = False):
        super().__init__(dataclass_types, prog=prog, usage=USAGE, description=description, epilog=epilog,
                         formatter_class=HelpFormatter, allow_abbrev=False)
        self.subcommand = subcommand  # a recipe's `command:` key names it (checked by `parse_subcommand`)
        self.config_path: str | None = None
        self._argv: list[str] = []

    def parse(self, argv: list[str]) -> tuple:
        """`--config` (defaults) and flags (overrides) into the dataclasses; any unknown key or flag is an error."""
        argv = self._argv = list(argv)
        self.config_path = _read_recipe(argv, self.prog)[0]  # a missing or broken file is one clear line
        *parsed, from_config, from_flags = self.parse_args_and_config(
            argv, return_remaining_strings=True, separate_remaining_strings=True)
        if from_config:
            key = from_config[0].removeprefix("--")
            self.error(f"{self.config_path}: unknown key {key!r}{self._did_you_mean(from_config[0], key=True)}")
        if from_flags:
            flag = from_flags[0]
            what = f"unknown flag {flag}" if flag.startswith("-") else f"unexpected argument {flag!r}"
            self.error(what + self._did_you_mean(flag))
        return tuple(parsed)

    def set_defaults_with_config(self, **config) -> list[str]:
        if self.subcommand:
            config.pop("command", None)
        return super().set_defaults_with_config(**config)

    def _did_you_mean(self, flag: str, key: bool = False) -> str:
        known = [option for option in self._option_string_actions if option.startswith("--")]
        match = difflib.get_close_matches(flag.split("=")[0], known, n=1, cutoff=0.6)
        if not match:
            return ""
        return f" (did you mean {match[0].removeprefix('--')!r}?)" if key else f" (did you mean {match[0]}?)"

    def error(self, message: str):
        """One line naming what is wrong, then exit 2 (argparse would print the whole usage block first)."""
        flag = message.split(":")[0].removeprefix("argument ").split("/")[0]
        if self.config_path and flag.startswith("--") and not any(a.split("=")[0] == flag for a in self._argv):
            message += f" (key {flag.removeprefix('--')!r} in {self.config_path})"
        _fail(self.prog, message)


def parse(dataclass_types, argv: list[str] | None, *, prog: str, doc: str, epilog: str, subcommand: bool = False
          ) -> tuple:
    """Parse `argv` (default: `sys.argv[1:]`) into instances of `dataclass_types`, in order."""
    parser = CommandParser(dataclass_types, prog=prog, description=doc, epilog=epilog, subcommand=subcommand)
    return parser.parse(sys.argv[1:] if argv is None else argv)


@dataclass(frozen=True)
class SubCommand:
    """A sub-command's arguments dataclasses, or a function returning them when importing them is slow (a
    `TrainingArguments` imports `PreTrainedModel` through peft), and its one-line summary."""

    dataclass_types: tuple | Callable[[], tuple]
    summary: str


def parse_subcommand(subcommands: dict[str, SubCommand], argv: list[str] | None, *, prog: str, doc: str,
                     epilog: str) -> tuple[str | None, tuple]:
    """`[<sub>] [--config recipe.yaml] [flags]` -> (sub, its dataclasses); `(None, ())` after printing the overview.

    The sub-command is the first word, or the recipe's `command:` key; both given and different is an error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    given = argv.pop(0) if argv and not argv[0].startswith("-") else None
    recipe = _read_recipe(argv, prog)[1]
    in_recipe = str(recipe["command"]) if isinstance(recipe, dict) and recipe.get("command") is not None else None
    if given and in_recipe and given != in_recipe:
        _fail(prog, f"the recipe is for `{prog} {in_recipe}`, not `{prog} {given}`")
    name = given or in_recipe
    if name is None:
        print(_overview(subcommands, prog, doc, epilog))
        if argv and argv[0] not in ("-h", "--help"):
            _fail(prog, f"give a sub-command ({' | '.join(subcommands)}) or a recipe with a `command:` key")
        return None, ()
    if name not in subcommands:
        match = difflib.get_close_matches(name, list(subcommands), n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else f"; expected one of {', '.join(subcommands)}"
        _fail(prog, f"unknown sub-command {name!r}{hint}")
    sub = subcommands[name]
    types = sub.dataclass_types() if callable(sub.dataclass_types) else sub.dataclass_types
    return name, parse(types, argv, prog=f"{prog} {name}", doc=f"{sub.summary}\n\n{doc}", epilog=epilog,
                       subcommand=True)


def _read_recipe(argv: list[str], prog: str) -> tuple[str | None, Any]:
    """The `--config` path in `argv` and the recipe read from it, `(None, None)` without one; exit 2 with one line
    when the path is missing, names no file or the file is not YAML."""
    if "--config" not in argv:
        return None, None
    position = argv.index("--config")
    if position + 1 == len(argv):
        _fail(prog, "argument --config: expected the path of a recipe YAML file")
    path = argv[position + 1]
    try:
        with open(path) as handle:
            return path, yaml.safe_load(handle)
    except FileNotFoundError:
        _fail(prog, f"argument --config: no such file {path}")
    except yaml.YAMLError as err:
        _fail(prog, f"{path} is not valid YAML ({str(err).splitlines()[0]})")


def _overview(subcommands: dict[str, SubCommand], prog: str, doc: str, epilog: str) -> str:
    width = max(len(name) for name in subcommands)
    rows = "\n".join(f"  {name.ljust(width)}  {sub.summary}" for name, sub in subcommands.items())
    return (f"usage: {prog} {{{','.join(subcommands)}}} [--config RECIPE.yaml] [--KEY VALUE ...]\n\n{doc.strip()}\n\n"
            f"sub-commands (`{prog} <sub-command> --help` lists its options):\n{rows}\n\n{epilog.strip()}")


def _fail(prog: str, message: str):
    sys.stderr.write(f"{prog}: error: {message}; run `{prog} --help` for the options\n")
    raise SystemExit(2)
