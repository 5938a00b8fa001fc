"""`feature-store-dbt`: dbt that dies with the run that started it.

dagster-dbt starts dbt as a child of the run's process; after a kill -9 of the run, a dbt busy
in a long silent query would go on writing for a run nobody follows. This wrapper asks the
kernel to kill it with its parent, then becomes dbt (same pid, arguments and output)."""

import os
import sys
from pathlib import Path

from resources.processes import die_with_parent

WRAPPER = "feature-store-dbt"


def run_dbt_executable() -> str:
    """The executable runs give dagster-dbt: this wrapper where installed, else dbt itself."""
    beside = Path(sys.executable).parent / WRAPPER
    return str(beside) if beside.exists() else dbt_executable()


def dbt_executable() -> str:
    """dbt from this interpreter's environment, so an unactivated virtualenv works too.

    Here, not beside the manifest code: this module imports nothing heavy (the wrapper
    starts before every dbt build; importing the contract cost ~0.8 s)."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def main() -> None:
    die_with_parent()
    dbt = dbt_executable()
    os.execvp(dbt, [dbt, *sys.argv[1:]])
