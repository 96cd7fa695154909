import subprocess
import sys
from importlib.metadata import version

import hf_medvlm
from hf_medvlm.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, summary in COMMANDS.items():
        assert f"  {name}" in out and summary in out


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err
    assert main(["evall"]) == 2
    assert "(did you mean 'eval'?)" in capsys.readouterr().err


def test_version_is_the_package_and_distribution_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == hf_medvlm.__version__ == version("hf_medvlm")


def test_console_entry_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "hf_medvlm", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == hf_medvlm.__version__
