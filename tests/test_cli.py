"""What a person at the terminal sees: help that teaches, one-line errors with a hint, and a run
shown as a progress bar with dbt's log kept in a file (read through a real pseudo-terminal)."""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from datetime import date
from pathlib import Path

import pytest

from feature_assets import cli
from feature_assets.cli import terminal
from feature_assets.cli.parsing import build_parser
from feature_assets.demo_data import DemoDataSpec, generate_landing_data
from tests.builders import (
    BUDGET_FACTOR,
    DBT_LOG_LINES,
    free_port,
    make_settings,
    settings_env,
    timed,
)

TABLE = "user_daily_transactions_7d"
CLI = [sys.executable, "-m", "feature_assets.cli"]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001  # argparse has no public accessor
    return {name: p for name, p in sub.choices.items() if name != "materialize"}


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_subcommand_help_has_a_description_defaults_formats_and_an_example(name) -> None:
    command = subcommands()[name]
    text = command.format_help()

    assert command.description and command.description.endswith("."), text
    assert f"example:\n  feature-store {name}" in text, text
    flat = " ".join(text.split())  # help wraps lines at the terminal's width
    for action in command._actions:  # noqa: SLF001  # argparse has no public accessor
        if action.dest == "help":
            continue
        assert action.help, f"{name}: {action.dest} has no help"
        if action.default not in (None, False) and "default:" not in action.help:
            told = f"{' '.join(action.help.split())} (default: {action.default})"
            assert told in flat, f"{name}: the default of {action.dest} is not told"
        if getattr(action.type, "__name__", "") in ("day", "utc"):
            assert "YYYY-MM-DD" in action.help or "ISO time" in action.help, action.help


@pytest.fixture
def user_env(tmp_path, monkeypatch) -> None:
    """An empty store whose online store is not running."""
    monkeypatch.setenv("FEATURE_STORE_HOME", str(tmp_path))
    # Nothing listens there: the store is "not running".
    monkeypatch.setenv("FEATURE_STORE_DYNAMODB_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FEATURE_STORE_DYNAMODB_MAX_ATTEMPTS", "2")


USER_ERRORS = {
    "unknown table": (["describe", "nope"], "nope", "feature-store tables"),
    "unknown table to list": (["features", "nope"], "nope", "feature-store tables"),
    "unknown table to build": (
        ["backfill", "2026-01-01", "2026-01-02", "--table", "nope"],
        "nope",
        "feature-store tables",
    ),
    "not a day": (["backfill", "2026-13-01", "2026-01-02"], "YYYY-MM-DD", "--help"),
    "range backwards": (["backfill", "2026-01-02", "2026-01-01"], "before the first day", "--help"),
    "not a time": (["freshness", "--now", "yesterday"], "ISO time", "--help"),
    "missing argument": (["search"], "words", "--help"),
    "unknown command": (["nope"], "nope", "--help"),
    "store not running": (["resync"], "unreachable", "online-store start"),
}


@pytest.mark.parametrize("case", USER_ERRORS.values(), ids=USER_ERRORS)
def test_every_user_error_is_one_line_with_a_hint_and_exit_status_2(user_env, capsys, case) -> None:
    args, names, hint = case

    try:
        status = cli.main(args)
    except SystemExit as exit:  # argparse's own way out
        status = exit.code

    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1 and not out.strip(), err
    assert lines[0].startswith("feature-store") and names in lines[0], lines[0]
    assert hint in lines[0], lines[0]


def read_pty(command: list[str], env: dict[str, str], budget: float) -> tuple[int, str]:
    """Run `command` with a pseudo-terminal as stdin, stdout and stderr, as in a real terminal;
    its exit status and everything it drew."""
    leader, follower = pty.openpty()
    # A terminal window of 100 columns by 30 rows, as a person's would report.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen(
        command, env=env, stdin=follower, stdout=follower, stderr=follower, close_fds=True
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other end closed: the process is done
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    else:
        process.kill()
        pytest.fail(f"not done within {budget:.0f}s; drew:\n{b''.join(chunks)[-4000:]!r}")
    os.close(leader)
    return process.wait(), b"".join(chunks).decode(errors="replace")


@pytest.mark.integration
def test_a_backfill_in_a_real_terminal_draws_a_progress_bar_and_no_dbt_log(
    tmp_path, online_server
) -> None:
    settings = make_settings(tmp_path, online_server.endpoint)
    generate_landing_data(
        settings.landing_dir,
        date(2026, 1, 1),
        date(2026, 1, 11),
        DemoDataSpec(users=200, merchants=20, transactions_per_day=500, seed=3),
    )
    env = settings_env(settings)
    _, startup = timed(lambda: subprocess.run([*CLI, "tables"], env=env, check=True, timeout=3_600))
    command = [*CLI, "backfill", "2026-01-09", "2026-01-10", "--table", TABLE]

    status, drawn = read_pty(command, env, BUDGET_FACTOR * 20 * startup)

    assert status == 0, drawn
    # tqdm in a terminal: the bar redrawn in place, ending at every step done.
    assert "\r" in drawn and re.search(r"2026-01-09\.\.2026-01-10: 100%\|.*\| (\d+)/\1 ", drawn), (
        drawn
    )
    assert not DBT_LOG_LINES.search(drawn), drawn
    (log,) = re.findall(r"its log: (\S+)\)", drawn)
    assert DBT_LOG_LINES.search(Path(log).read_text()), "dbt's log is kept in the named file"


def test_a_runs_own_output_goes_to_its_log_and_its_tail_is_shown_when_it_fails(
    tmp_path, capfd
) -> None:
    log = tmp_path / "logs" / "run.log"
    with terminal.run_output(log, verbose=False) as screen:
        os.write(1, b"Running with dbt=1.11\n")  # as Dagster's mirror of a step writes it
        os.write(2, b"a Dagster warning\n")
        screen.write("progress\n")
    out, err = capfd.readouterr()
    assert "progress" in err and "dbt" not in out + err and "warning" not in out + err
    assert log.read_text() == "Running with dbt=1.11\na Dagster warning\n"

    terminal.show_failure(log)
    _, err = capfd.readouterr()
    assert "Running with dbt=1.11" in err and str(log) in err

    with terminal.run_output(log, verbose=True):
        os.write(1, b"Running with dbt, verbose\n")
    assert "verbose" in capfd.readouterr().out
