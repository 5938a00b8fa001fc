"""How long `import feature_assets.sdk` takes, now and at an earlier commit, in one run.

    .venv/bin/python -m benchmarks.sdk_import [--base 57ead8e] [--repeats 15]

The earlier commit is checked out into a temporary git worktree; each import runs in a fresh
interpreter from that tree (its folder first on sys.path), alternating the two, and the
script prints median and p99 of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = "import feature_assets.sdk"


def import_seconds(tree: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", PROBE], cwd=tree, check=True, capture_output=True)
    return time.perf_counter() - started


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * len(ordered) + 0.5) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="57ead8e", help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            times: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(args.repeats):
                times["before"].append(import_seconds(base))
                times["after"].append(import_seconds(ROOT))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)
    for name, values in times.items():
        print(f"{name:7} median {statistics.median(values):.2f}s  p99 {p99(values):.2f}s")
    ratio = statistics.median(times["after"]) / statistics.median(times["before"])
    print(f"after / before (medians): {ratio:.2f}x")


if __name__ == "__main__":
    main()
