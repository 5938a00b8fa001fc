"""Under throttling and partial batches (a proxy in front of the real server), writes and reads
complete with every item exact, and the write rate degrades gracefully, not by 40x."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import pyarrow as pa
import pytest

from resources.online_store import OnlineStore
from tests.builders import BUDGET_FACTOR, synthetic_table, timed
from tests.throttling_proxy import throttling_proxy

TABLE = synthetic_table(name="user_daily_clicks_7d", ttl=None, features=("clicks",))
N = 2_000


def rows() -> pa.Table:
    stamp = pa.array([datetime(2026, 1, 2)] * N, pa.timestamp("us"))
    return pa.table(
        {
            "user_id": pa.array(range(N), pa.int64()),
            "feature_date": pa.array([date(2026, 1, 1)] * N),
            "event_timestamp": stamp,
            "created_at": stamp,
            "clicks": pa.array([3 * i for i in range(N)], pa.int64()),
        }
    )


def store_at(endpoint: str, prefix: str) -> OnlineStore:
    return OnlineStore(endpoint_url=endpoint, table_prefix=prefix)


@pytest.mark.parametrize("share", [0.1, 0.3])
def test_writes_and_reads_complete_exactly_under_throttling(online_server, share) -> None:
    direct = store_at(online_server.endpoint, f"t{uuid.uuid4().hex[:8]}_")
    # The unit: the same write with nothing in the way.
    written, unit = timed(lambda: direct.write_rows(TABLE, rows()))
    assert written == N
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    with throttling_proxy(online_server.endpoint, share, share) as (endpoint, counts):
        throttled = store_at(endpoint, prefix)
        written, took = timed(lambda: throttled.write_rows(TABLE, rows()))
        assert written == N
        assert counts.throttled > 0 and counts.partial > 0  # the faults did happen
        # Graceful, not the 40x of a collapsing client. Backoff sleeps do not shrink with a
        # fast unit, and a loaded machine slows the throttled write more than the unit, so the
        # floor is generous; benchmarks/throttling.py measures the real ratio (2.6x at 30%).
        assert took < BUDGET_FACTOR * max(unit, 2.0), (took, unit)
        reads = throttled.read(TABLE, [{"user_id": i} for i in range(N)], ["clicks"])
    assert [r.values.get("clicks") for r in reads] == [3 * i for i in range(N)]
    client = store_at(online_server.endpoint, prefix).client
    count = client.scan(TableName=f"{prefix}{TABLE.name}", Select="COUNT")
    total = count["Count"]
    while "LastEvaluatedKey" in count:
        count = client.scan(
            TableName=f"{prefix}{TABLE.name}",
            Select="COUNT",
            ExclusiveStartKey=count["LastEvaluatedKey"],
        )
        total += count["Count"]
    assert total == N


def test_throttling_longer_than_botocores_retries_is_waited_out(online_server) -> None:
    """A long sync meets a burst of throttling that outlasts botocore's retries of one call:
    the batch waits it out within its retry budget instead of failing the whole write."""
    attempts = 4
    # botocore's legacy backoff for DynamoDB: at most 50 ms x 2^n between attempts.
    botocore_patience = sum(0.05 * 2**n for n in range(attempts - 1))
    burst = 4 * botocore_patience + 1.0
    with throttling_proxy(online_server.endpoint, 0.0, 0.0, burst=burst) as (endpoint, counts):
        store = OnlineStore(
            endpoint_url=endpoint, table_prefix=f"t{uuid.uuid4().hex[:8]}_", max_attempts=attempts
        )
        written, took = timed(lambda: store.write_rows(TABLE, rows()))
        reads = store.read(TABLE, [{"user_id": i} for i in range(N)], ["clicks"])
    assert written == N and counts.throttled > attempts
    assert took >= burst
    assert [r.values.get("clicks") for r in reads] == [3 * i for i in range(N)]
