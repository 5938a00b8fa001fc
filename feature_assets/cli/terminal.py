"""What the terminal shows while a command runs the pipeline: a progress bar and our own lines.

Everything the run itself prints (dbt's log, Dagster's warnings, tracebacks of failed steps)
goes to a log file named on screen, and is shown only when the run fails or with --verbose.
Dagster mirrors each step's output to the process's file descriptors 1 and 2, so those are what
we point at the file; the progress bar writes to a copy of the terminal's stderr made before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

# Enough of a failed run's log to see which step failed and why, without scrolling.
FAILURE_TAIL_LINES = 40


@contextmanager
def run_output(log_path: Path, *, verbose: bool) -> Iterator[TextIO]:
    """Yields the terminal (for progress); meanwhile fds 1 and 2 write to `log_path`, unless
    `verbose`, when the run's own output stays on the terminal too."""
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(2), "w", buffering=1)
    if verbose:
        with terminal:
            yield terminal
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log, terminal:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def progress_bar(total: int, description: str, unit: str, stream: TextIO | None = None) -> tqdm:
    """The one progress display: redrawn in place on a terminal, a line per update when piped
    (so a log or CI shows progress too, without a wall of carriage returns)."""
    stream = stream or sys.stderr
    interactive = stream.isatty()
    # A terminal that reports no size (some pseudo-terminals) would get an empty bar.
    sized = interactive and os.get_terminal_size(stream.fileno()).columns > 0
    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=stream if interactive else _Lines(stream),
        dynamic_ncols=sized,
        ncols=None if sized else 120,
        mininterval=0.1 if interactive else 2.0,
        ascii=not interactive,
    )


class _Lines:
    """A stream for tqdm that turns each in-place redraw into a line of its own."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.encoding = getattr(stream, "encoding", "utf-8")

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def show_failure(log_path: Path, stream: TextIO | None = None) -> None:
    """The end of a failed run's log, and where the rest is."""
    stream = stream or sys.stderr
    lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    for line in lines[-FAILURE_TAIL_LINES:]:
        print(f"  | {line}", file=stream)
    print(f"the run's full log (dbt and Dagster): {log_path}", file=stream)
