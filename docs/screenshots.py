"""`make screenshots`: what a new user sees after the demo, taken with headless Chromium.

Builds a small demo store in its own home, starts the Dagster UI and the dbt docs catalog on
free ports, photographs the pages the README shows into docs/, and stops everything it started
by pid. Needs Debian's chromium (`apt-get install chromium`) and playwright (`.[docs]`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

DOCS = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "feature_assets.cli"]
TABLE = "user_daily_transactions_7d"
# Chromium's own connections are refused on a closed network: keep it from trying.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GROUPS = ["user_category", "user", "customer", "raw_sources"]
# The service whose served reads the pictures drift on purpose (DRIFTED_READS).
DRIFTED = "fraud_detection_v2"
# Reads of DRIFTED scoring larger transactions than its training set held (the demo's own
# reads draw amounts from lognormal(3.5, 1)).
DRIFTED_READS = """
import random
from dataclasses import replace
from resources.settings import Settings
from feature_assets.sdk import FeatureStore
store = FeatureStore.from_settings(replace(Settings.from_env(), serving_log_rate=1.0))
table = store.tables["user_daily_transactions_7d"]
users = sorted(store.offline.latest_rows(table).column("user_id").to_pylist())
rng = random.Random(1)
for _ in range(10):
    rows = [{"user_id": rng.choice(users), "amount": round(rng.lognormvariate(5.0, 1.0), 2),
             "usd_rate": round(rng.uniform(1.0, 1.1), 4)} for _ in range(100)]
    store.get_online_features(SERVICE, rows)
store.close()
""".replace("SERVICE", repr(DRIFTED))


def expand_groups(page: Page) -> None:
    """The global lineage opens with every group folded: unfold them (the graph's own label)."""
    for group in GROUPS:
        page.get_by_text(group, exact=True).last.dblclick()
        page.wait_for_timeout(1_500)


def open_check_partitions(page: Page) -> None:
    page.get_by_text("Partitions", exact=True).last.click()
    page.wait_for_timeout(2_000)


def open_second_day(page: Page) -> None:
    """One day's own figures: the day before the demo's last (yesterday, UTC)."""
    day = datetime.now(UTC).date() - timedelta(days=2)
    page.get_by_text(day.isoformat(), exact=True).filter(visible=True).first.click()
    page.wait_for_timeout(2_000)


def nothing(page: Page) -> None:
    pass


# Each page: file, server ("ui" is the Dagster UI, "docs" the dbt docs catalog), path, what to
# do before the picture, and the window's height.
PAGES: list[tuple[str, str, str, Callable[[Page], None], int]] = [
    ("dagster_lineage.png", "ui", "/asset-groups", expand_groups, 1900),
    ("dagster_table.png", "ui", f"/assets/{TABLE}", nothing, 1000),
    (
        "dagster_table_partition.png",
        "ui",
        f"/assets/{TABLE}?view=partitions",
        open_second_day,
        1000,
    ),
    (
        "dagster_check_partitions.png",
        "ui",
        f"/assets/{TABLE}?view=checks",
        open_check_partitions,
        1000,
    ),
    (
        "dagster_online_table.png",
        "ui",
        f"/assets/online/{TABLE}_online?view=partitions",
        open_second_day,
        1000,
    ),
    (
        "dagster_drift_checks.png",
        "ui",
        f"/assets/monitoring/{DRIFTED}_drift?view=checks",
        nothing,
        1000,
    ),
    ("monitoring_report.png", "report", f"/{DRIFTED}.html", nothing, 1800),
    ("dbt_docs_home.png", "docs", "/#!/overview", nothing, 1000),
    ("dbt_docs_model.png", "docs", f"/#!/model/model.feature_store.{TABLE}", nothing, 1400),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, budget: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{url}: the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except OSError:
            time.sleep(1)
    sys.exit(f"{url} did not answer within {budget:.0f}s:\n{log.read_text()[-3000:]}")


@contextmanager
def server(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A server in its own process group, stopped by pid whatever happens."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [*CLI, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def dismiss_popups(page: Page) -> None:
    """Dagster's first-visit "Join the community" dialog covers the page."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()


def shoot(page: Page, url: str, prepare: Callable[[Page], None], target: Path) -> None:
    page.goto(url, wait_until="networkidle", timeout=120_000)
    page.wait_for_timeout(3_000)  # the UI renders after its queries answer
    dismiss_popups(page)
    prepare(page)
    page.wait_for_timeout(1_000)
    page.screenshot(path=str(target))
    print(f"  {target.name}  <- {url}")


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("screenshots need Debian's chromium: apt-get install chromium")
    home = Path(tempfile.mkdtemp(prefix="feature-store-screenshots-"))
    env = {
        **os.environ,
        "FEATURE_STORE_HOME": str(home),
        "FEATURE_STORE_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{free_port()}",
    }
    env.pop("FEATURE_STORE_START_DATE", None)
    try:
        print("building a 14-day demo store ...")
        demo = [*CLI, "demo", "--days", "14", "--users", "500", "--transactions-per-day", "5000"]
        subprocess.run(demo, env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"serving {DRIFTED} reads that drift, then `feature-store monitor` ...")
        subprocess.run([sys.executable, "-c", DRIFTED_READS], env=env, check=True)
        subprocess.run([*CLI, "monitor"], env=env, check=True, stdout=subprocess.DEVNULL)
        report = home / "monitoring" / datetime.now(UTC).date().isoformat()
        ui_port, docs_port = free_port(), free_port()
        with (
            server(["ui", "--port", str(ui_port)], env, home / "ui.log") as ui,
            server(["catalog", "--port", str(docs_port)], env, home / "docs.log") as docs,
        ):
            bases = {
                "ui": f"http://127.0.0.1:{ui_port}",
                "docs": f"http://127.0.0.1:{docs_port}",
                "report": report.as_uri(),
            }
            wait_http(f"{bases['ui']}/server_info", 600, ui, home / "ui.log")
            wait_http(f"{bases['docs']}/", 600, docs, home / "docs.log")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                page = browser.new_page()
                for name, where, path, prepare, height in PAGES:
                    page.set_viewport_size({"width": 1600, "height": height})
                    shoot(page, bases[where] + path, prepare, DOCS / name)
                browser.close()
    finally:
        subprocess.run([*CLI, "online-store", "stop"], env=env, stdout=subprocess.DEVNULL)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
