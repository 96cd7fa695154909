"""The printed summary of `hf-medvlm eval` (issue 17: the win-rate line shows the `inconsistent` count)."""

from hf_medvlm.eval.evaluation import format_table


def test_win_rate_line_shows_inconsistent_among_ties():
    scores = {"biomed_vital_win_rate": {"win_rate": 40.0, "wins": 2, "ties": 2, "losses": 1, "inconsistent": 1,
                                        "unparseable": {"count": 0}}}
    line = format_table(scores, "VQA-RAD").splitlines()[1]
    assert "wins=2, ties=2 of which inconsistent=1, losses=1, unparseable=0" in line
