"""`hf_medvlm.testing.kill.run_and_kill`, the building block of the kill-and-rerun tests: it kills at the condition,
not after a sleep, and says when the process ended first."""

import sys

from hf_medvlm.testing.kill import file_lines_at_least, file_size_at_least, run_and_kill

WRITER = """
import sys, time
with open(sys.argv[1], "w") as f:
    for i in range(10_000):
        f.write(f"line {i}\\n"); f.flush(); time.sleep(0.002)
print("finished")
"""


def test_kills_the_moment_the_condition_holds(tmp_path):
    out = tmp_path / "out.txt"
    run = run_and_kill([], file_lines_at_least(out, 50), command=[sys.executable, "-c", WRITER, str(out)])
    assert run.killed and run.returncode == -9 and "finished" not in run.stdout
    assert 50 <= out.read_text().count("\n") < 10_000


def test_reports_a_process_that_ended_before_the_condition(tmp_path):
    run = run_and_kill([], file_size_at_least(tmp_path / "never", 1), command=[sys.executable, "-c", "print('done')"])
    assert not run.killed and run.returncode == 0 and run.stdout == "done\n"
