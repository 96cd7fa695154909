"""The shared command parser: defaults in --help, one-line errors naming the flag or recipe key, sub-commands."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from hf_medvlm.commands.parser import SubCommand, parse, parse_subcommand


@dataclass
class Args:
    output_dir: str = field(metadata={"help": "where to write"})
    learning_rate: float = field(default=2e-5, metadata={"help": "step size"})
    max_length: int = field(default=1024, metadata={"help": "longest sequence"})
    protocols: list[str] = field(default_factory=lambda: ["strict"], metadata={"help": "scoring protocols"})


@dataclass
class Other:
    num_clusters: int = field(default=10, metadata={"help": "K-means clusters"})


def _parse(argv):
    return parse((Args,), argv, prog="hf-medvlm demo-verb", doc="What the verb does.", epilog="example:\n  x")


def _error(capsys, argv, run=_parse) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, not argparse's usage block
    return err


def test_yaml_sets_defaults_and_flags_override(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("output_dir: out\nlearning_rate: 1.0e-3\nprotocols: [llava_med, strict]\n")
    (args,) = _parse(["--config", str(recipe), "--max_length", "7"])
    assert (args.output_dir, args.learning_rate, args.max_length, args.protocols) == (
        "out", 1e-3, 7, ["llava_med", "strict"])
    (args,) = _parse(["--config", str(recipe), "--learning_rate", "0.5"])
    assert args.learning_rate == 0.5


def test_help_shows_defaults_usage_and_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert out.startswith("usage: hf-medvlm demo-verb [--config RECIPE.yaml] [--KEY VALUE ...]\n")
    assert "step size (default: 2e-05)" in out and "(default: 1024)" in out
    assert "What the verb does." in out and "example:\n  x" in out


def test_bad_value_in_recipe_names_key_value_and_file(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("output_dir: out\nlearning_rate: abc\n")
    err = _error(capsys, ["--config", str(recipe)])
    assert "--learning_rate" in err and "'abc'" in err and f"key 'learning_rate' in {recipe}" in err
    assert "run `hf-medvlm demo-verb --help`" in err


def test_bad_value_on_command_line_names_the_flag(capsys):
    err = _error(capsys, ["--output_dir", "o", "--max_length", "ten"])
    assert "argument --max_length" in err and "'ten'" in err and "key" not in err


def test_misspelled_flag_and_recipe_key_suggest_the_closest(tmp_path, capsys):
    err = _error(capsys, ["--output_dir", "o", "--max_lenght", "5"])
    assert "unknown flag --max_lenght (did you mean --max_length?)" in err
    recipe = tmp_path / "r.yaml"
    recipe.write_text("output_dir: out\nlearnig_rate: 0.1\n")
    err = _error(capsys, ["--config", str(recipe)])
    assert f"{recipe}: unknown key 'learnig_rate' (did you mean 'learning_rate'?)" in err
    assert "did you mean" not in _error(capsys, ["--output_dir", "o", "--zzz", "1"])


def test_abbreviated_flags_are_not_guessed(capsys):
    assert "unknown flag --learning" in _error(capsys, ["--output_dir", "o", "--learning", "1"])


def test_missing_required_missing_file_and_bad_yaml(tmp_path, capsys):
    assert "required: --output_dir" in _error(capsys, [])
    assert "no such file does/not/exist.yaml" in _error(capsys, ["--config", "does/not/exist.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_dir: [unclosed\n")
    assert f"{bad} is not valid YAML" in _error(capsys, ["--config", str(bad)])
    assert "expected the path of a recipe" in _error(capsys, ["--output_dir", "o", "--config"])


SUBCOMMANDS = {"train": SubCommand((Args,), "train it"), "pick": SubCommand(lambda: (Other,), "pick some")}


def _sub(argv):
    return parse_subcommand(SUBCOMMANDS, argv, prog="hf-medvlm verb", doc="Verb.", epilog="example:\n  y")


def test_subcommand_from_the_command_line_or_the_recipe(tmp_path, capsys):
    name, (args,) = _sub(["pick", "--num_clusters", "3"])
    assert name == "pick" and args.num_clusters == 3  # dataclasses from a function: imported only when chosen
    recipe = tmp_path / "pick.yaml"
    recipe.write_text("command: pick\nnum_clusters: 4\n")
    assert _sub(["--config", str(recipe)])[1][0].num_clusters == 4
    assert _sub(["pick", "--config", str(recipe), "--num_clusters", "5"])[1][0].num_clusters == 5
    err = _error(capsys, ["train", "--config", str(recipe)], run=_sub)
    assert "the recipe is for `hf-medvlm verb pick`, not `hf-medvlm verb train`" in err
    assert "unknown sub-command 'pik' (did you mean 'pick'?)" in _error(capsys, ["pik"], run=_sub)


def test_subcommand_overview(capsys):
    assert _sub(["--help"]) == (None, ())
    out = capsys.readouterr().out
    assert out.startswith("usage: hf-medvlm verb {train,pick}") and "  pick   pick some" in out and "example:" in out
    assert _sub([]) == (None, ())
    capsys.readouterr()
    assert "give a sub-command (train | pick)" in _error(capsys, ["--num_clusters", "3"], run=_sub)


def test_real_train_parser_reports_a_bad_recipe_value_in_one_line(tmp_path, capsys):
    from hf_medvlm.commands.train import parse_args

    recipe = tmp_path / "r.yaml"
    recipe.write_text("model_name_or_path: x\noutput_dir: o\nuse_cpu: true\nlearning_rate: abc\n")
    err = _error(capsys, ["--config", str(recipe)], run=parse_args)
    assert err.startswith("hf-medvlm train: error: argument --learning_rate") and "'abc'" in err
    recipe.write_text("model_name_or_path: x\noutput_dir: o\nuse_cpu: true\n")
    err = _error(capsys, ["--config", str(recipe), "--max_seq_length", "512"], run=parse_args)
    assert "unknown flag --max_seq_length (did you mean --max_length?)" in err


def test_command_key_belongs_to_subcommand_recipes_only(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("command: pick\noutput_dir: out\n")
    assert "unknown key 'command'" in _error(capsys, ["--config", str(recipe)])
