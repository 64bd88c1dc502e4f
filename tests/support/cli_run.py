"""Run `labkit` in the test's process, as a learner would from a shell: (exit code, everything it printed)."""

from __future__ import annotations

from labkit.cli import main as cli_main


def run_labkit(capsys, *argv: str) -> tuple[int, str]:
    """`labkit ARGV...` through its main(); argparse's own refusals (SystemExit) count as their exit code."""
    try:
        code = cli_main.main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err
