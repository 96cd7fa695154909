"""When a run whose items fail one at a time has failed as a whole: the `--max_failure_rate` rule.

Outputs are written with the failed items counted either way; the exit status is 1 when the failed share is above
`--max_failure_rate` or an LLM request failed for good, else 0. Each command's default and why: docs/cli.md.
"""

from __future__ import annotations

import sys
from dataclasses import field

__all__ = ["failure_rate_field", "check_failure_rate", "failure_exit_code"]


def failure_rate_field(default: float, items: str):
    """The `max_failure_rate` dataclass field of a command; `items` says what is counted, e.g. "records"."""
    return field(default=default, metadata={"help": (
        f"Exit with status 1 when more than this fraction of the {items} failed (outputs are written either way, "
        "with the failures counted by reason); 0 fails the run on any failure, 1 never fails it.")})


def check_failure_rate(value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"max_failure_rate must be between 0 and 1, got {value}")


def failure_exit_code(command: str, failed: int, total: int, max_failure_rate: float, items: str, *,
                      details: str = "", failed_requests: int = 0) -> int:
    """0, or 1 with one line on stderr when `failed / total` is above `max_failure_rate` or, for commands that send
    LLM requests, when any request failed after its retries (the output is incomplete; a rerun sends only those)."""
    check_failure_rate(max_failure_rate)
    if failed_requests:
        print(f"hf-medvlm {command}: failed: {failed_requests} request(s) failed after their retries; rerun the same "
              "command to send only those" + (f"; {details}" if details else ""), file=sys.stderr)
        return 1
    if not total or failed / total <= max_failure_rate:
        return 0
    print(f"hf-medvlm {command}: failed: {failed} of {total} {items} failed ({failed / total:.0%}), more than "
          f"--max_failure_rate {max_failure_rate:g}" + (f"; {details}" if details else ""), file=sys.stderr)
    return 1
