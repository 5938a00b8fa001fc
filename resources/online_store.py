"""The online store: one DynamoDB table per feature table, through the low-level boto3 client.

The item layout lives in `resources.online_items`; this module does the I/O: idempotent table
creation, parallel BatchWriteItem, and BatchGetItem packed across tables, with unprocessed
items retried with backoff on top of botocore's own retry configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import boto3
import pyarrow as pa
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from feature_assets.kernel.contract import (
    CREATED_TIMESTAMP_ATTRIBUTE,
    EVENT_TIMESTAMP_ATTRIBUTE,
    EXPIRY_ATTRIBUTE,
    FeatureTable,
)
from feature_assets.kernel.errors import StoreUnavailableError
from resources.online_items import (
    OnlineStatus,
    from_attribute,
    items_of,
    key_attributes,
    key_names,
    key_schema,
    newer_wins_condition,
    status_at,
    typed_key,
)
from resources.settings import DEFAULT_DYNAMODB_MAX_ATTEMPTS, Settings

BATCH_GET_LIMIT = 100  # keys per BatchGetItem, across tables
BATCH_WRITE_LIMIT = 25  # items per BatchWriteItem
# Error codes that mean "busy, not broken": still failing after botocore's retries, the
# store is unavailable for now.
# botocore's legacy mode retries DynamoDB after 50 ms, doubling: under 30% throttling a sync
# measured 455 items/s (851 unthrottled); "adaptive" rate-limits the client down to 19 items/s
# and "standard" (1 s base, up to 20 s) to 57 (benchmarks/throttling.py).
RETRY_MODE = "legacy"
# How long one write batch may wait out throttling beyond botocore's retries before the
# write fails (and the sync step is retried): a full resync of 18,442 items at 30%
# throttling + 30% unprocessed failed on one unlucky batch without it.
THROTTLE_BUDGET_SECONDS = 120.0
# How long a table seen to exist is not asked about again before a write.
KNOWN_TABLE_SECONDS = 60.0
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


@contextmanager
def unavailable_as_error(what: str) -> Iterator[None]:
    """Connection failures and throttling become `StoreUnavailableError` naming `what`."""
    try:
        yield
    except (BotocoreConnectionError, HTTPClientError) as error:
        raise StoreUnavailableError(f"{what}: online store unreachable ({error})") from error
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in THROTTLING_CODES:
            raise StoreUnavailableError(f"{what}: online store throttling ({code})") from error
        raise


@dataclass(frozen=True)
class OnlineRead:
    status: OnlineStatus
    values: dict[str, Any] = field(default_factory=dict)


class OnlineStore:
    """DynamoDB (or a DynamoDB-compatible server) through the low-level boto3 client."""

    def __init__(
        self,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        table_prefix: str = "featurestore_",
        max_attempts: int = DEFAULT_DYNAMODB_MAX_ATTEMPTS,
        write_concurrency: int = 4,
        read_concurrency: int = 8,
        throttle_budget_seconds: float = THROTTLE_BUDGET_SECONDS,
        client: Any = None,
    ) -> None:
        """`client` replaces the boto3 client built from the other settings (tests, proxies)."""
        self.endpoint_url = endpoint_url
        self.region = region
        self.table_prefix = table_prefix
        self.max_attempts = max_attempts
        self.write_concurrency = write_concurrency
        self.read_concurrency = read_concurrency
        self.throttle_budget_seconds = throttle_budget_seconds
        self._client = client
        self._read_pool: ThreadPoolExecutor | None = None
        self._known_tables: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> OnlineStore:
        return cls(
            endpoint_url=settings.dynamodb_endpoint,
            region=settings.region,
            table_prefix=settings.table_prefix,
            max_attempts=settings.dynamodb_max_attempts,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            session = boto3.session.Session(region_name=self.region)
            if self.endpoint_url and session.get_credentials() is None:
                # A local server accepts any credentials; AWS uses the normal credential chain.
                session = boto3.session.Session(
                    region_name=self.region,
                    aws_access_key_id="local",
                    aws_secret_access_key="local",
                )
            config = Config(
                retries={"max_attempts": self.max_attempts, "mode": RETRY_MODE},
                max_pool_connections=max(self.write_concurrency, self.read_concurrency) * 2,
                connect_timeout=5,
                read_timeout=30,
                # The requests are built here (items, keys) and the server validates them
                # anyway: botocore's own pass over each request was ~10% of a sync's CPU.
                parameter_validation=False,
            )
            self._client = session.client("dynamodb", endpoint_url=self.endpoint_url, config=config)
        return self._client

    def ping(self) -> None:
        """One cheap call; StoreUnavailableError when the store does not answer."""
        with unavailable_as_error("online store"):
            self.client.list_tables(Limit=1)

    # --- tables --------------------------------------------------------------------------

    def table_name(self, table: FeatureTable) -> str:
        return f"{self.table_prefix}{table.name}"

    def ensure_table(self, table: FeatureTable) -> bool:
        """Create the table and register its TTL attribute, unless it already exists."""
        return self.ensure_named_table(
            self.table_name(table), table, with_ttl=table.ttl is not None
        )

    def ensure_named_table(self, name: str, key_table: FeatureTable, *, with_ttl: bool) -> bool:
        """Create a table keyed as `key_table`'s items are, unless it already exists (asked
        once a minute per store object: pushes come in small, frequent batches). True if
        this call created it (it holds nothing yet)."""
        if self.table_known(name):
            return False
        try:
            self.client.describe_table(TableName=name)
            self.remember_table(name)
            return False
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        schema, definitions = key_schema(key_table)
        try:
            self.client.create_table(
                TableName=name,
                KeySchema=schema,
                AttributeDefinitions=definitions,
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
        self.client.get_waiter("table_exists").wait(TableName=name)
        if with_ttl:
            self.client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRY_ATTRIBUTE},
            )
        self.remember_table(name)
        return True

    def table_known(self, name: str) -> bool:
        """The table was seen to exist within the last minute (a restarted embedded store
        loses its tables: the cache must not outlive that by long)."""
        return (
            time.monotonic() - self._known_tables.get(name, -KNOWN_TABLE_SECONDS)
            < KNOWN_TABLE_SECONDS
        )

    def remember_table(self, name: str) -> None:
        self._known_tables[name] = time.monotonic()

    def forget_table(self, name: str) -> None:
        self._known_tables.pop(name, None)

    def delete_table(self, table: FeatureTable) -> None:
        self.delete_named_table(self.table_name(table))

    def delete_named_table(self, name: str) -> None:
        self.forget_table(name)
        try:
            self.client.delete_table(TableName=name)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise

    # --- writes --------------------------------------------------------------------------

    def write_rows(
        self,
        table: FeatureTable,
        rows: pa.Table,
        on_written: Callable[[int], None] | None = None,
    ) -> int:
        """Write rows (already chosen newer-wins by the offline store) as items; returns the count.
        `on_written` hears of each batch written (a progress display)."""
        with unavailable_as_error(f"online table {self.table_name(table)!r}"):
            self.ensure_table(table)
        return self.write_items(self.table_name(table), _items(table, rows), on_written)

    def write_items(
        self,
        name: str,
        items: Iterable[dict[str, Any]],
        on_written: Callable[[int], None] | None = None,
    ) -> int:
        """Put whole items into table `name` (which exists); returns the count.

        Unconditional batch writes, several in flight: newer-wins is decided before, from the
        offline store, and one writer per table (a Dagster pool) keeps that decision valid.
        Every write is idempotent, so a sync that dies half-way is completed by running it again.
        """
        written = 0
        in_flight: set[Future[int]] = set()

        def collect(done: Iterable[Future[int]]) -> int:
            count = 0
            for future in done:
                batch = future.result()
                count += batch
                if on_written:
                    on_written(batch)
            return count

        with (
            unavailable_as_error(f"online table {name!r}"),
            ThreadPoolExecutor(max_workers=self.write_concurrency) as pool,
        ):
            # Serialize while earlier batches are on the wire, with a bounded backlog.
            for batch in _batches(items, BATCH_WRITE_LIMIT):
                if len(in_flight) >= self.write_concurrency * 4:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    written += collect(done)
                in_flight.add(pool.submit(self._write_batch, name, batch))
            written += collect(as_completed(in_flight))
        return written

    def _write_batch(self, name: str, items: list[dict[str, Any]]) -> int:
        """One batch until every item is written. Throttling (an error after botocore's own
        retries, or items left unprocessed) is waited out within the batch's retry budget, so
        one unlucky batch of a long sync does not fail the whole write; an unreachable store
        fails at once (the sync step retries later)."""
        request = {name: [{"PutRequest": {"Item": item}} for item in items]}
        deadline = time.monotonic() + self.throttle_budget_seconds
        delay = 0.05
        while True:
            try:
                response = self.client.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in THROTTLING_CODES:
                    raise
                if time.monotonic() + delay > deadline:
                    raise
            if not request:
                return len(items)
            if time.monotonic() + delay > deadline:
                raise StoreUnavailableError(
                    f"online table {name!r}: {len(request[name])} items still unprocessed after "
                    f"the retry budget of {self.throttle_budget_seconds:g}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def put_if_newer(self, table: FeatureTable, rows: pa.Table) -> tuple[int, int]:
        """Write rows only over older values: each a PutItem conditional on the stored item's
        event time (then created time) being older or equal, so a late row never replaces a
        newer one, whoever writes it and in whatever order. Returns (written, kept newer).

        Pushes write this way; so does the sync when it re-applies pushes that raced it."""
        name = self.table_name(table)
        condition = newer_wins_condition(table)
        names = {"#e": EVENT_TIMESTAMP_ATTRIBUTE}
        if table.created_timestamp:
            names["#c"] = CREATED_TIMESTAMP_ATTRIBUTE

        def put(item: dict[str, Any]) -> bool:
            values = {":e": item[EVENT_TIMESTAMP_ATTRIBUTE]}
            if table.created_timestamp:
                values[":c"] = item.get(CREATED_TIMESTAMP_ATTRIBUTE, {"S": ""})
            try:
                self.client.put_item(
                    TableName=name,
                    Item=item,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            except ClientError as error:
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    return False
                raise
            return True

        items = list(_items(table, rows))
        with (
            unavailable_as_error(f"online table {name!r}"),
            ThreadPoolExecutor(max_workers=self.write_concurrency) as pool,
        ):
            self.ensure_table(table)
            written = sum(pool.map(put, items))
        return written, len(items) - written

    # --- reads ---------------------------------------------------------------------------

    def read(
        self,
        table: FeatureTable,
        entity_rows: Sequence[Mapping[str, Any]],
        features: Sequence[str],
        *,
        now: datetime | None = None,
    ) -> list[OnlineRead]:
        return self.read_tables([(table, features)], entity_rows, now=now)[0]

    def read_tables(
        self,
        requests: Sequence[tuple[FeatureTable, Sequence[str]]],
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        now: datetime | None = None,
    ) -> list[list[OnlineRead]]:
        """Per table, one result per entity row, in order. Keys of all tables are packed into
        BatchGetItem requests of up to 100, sent in parallel; only requested attributes come back."""
        now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
        keys = [[typed_key(table, entity) for entity in entity_rows] for table, _ in requests]
        wanted = [
            (i, key) for i, per_table in enumerate(keys) for key in dict.fromkeys(per_table)
        ]  # each (table, key) once
        batches = [
            list(islice(wanted, s, s + BATCH_GET_LIMIT))
            for s in range(0, len(wanted), BATCH_GET_LIMIT)
        ]
        found: dict[tuple[int, tuple], dict[str, Any]] = {}
        with unavailable_as_error(
            f"online tables {sorted(self.table_name(t) for t, _ in requests)}"
        ):
            if len(batches) == 1:  # the common single-request case skips the thread hand-off
                found.update(self._batch_get(requests, batches[0]))
            elif batches:
                if self._read_pool is None:
                    self._read_pool = ThreadPoolExecutor(max_workers=self.read_concurrency)
                for batch_found in self._read_pool.map(
                    lambda b: self._batch_get(requests, b), batches
                ):
                    found.update(batch_found)
        results = []
        for i, (table, features) in enumerate(requests):
            types = {feature: table.feature(feature).logical_type for feature in features}
            per_table = []
            for key in keys[i]:
                item = found.get((i, key))
                status = status_at(table, item, now)
                values = (
                    {f: from_attribute(item.get(f, {"NULL": True}), types[f]) for f in features}
                    if status is OnlineStatus.PRESENT
                    else dict.fromkeys(features)
                )
                per_table.append(OnlineRead(status, values))
            results.append(per_table)
        return results

    def _batch_get(
        self, requests: Sequence[tuple[FeatureTable, Sequence[str]]], batch: list[tuple[int, tuple]]
    ) -> dict[tuple[int, tuple], dict[str, Any]]:
        by_name: dict[str, int] = {}
        request: dict[str, Any] = {}
        back: dict[tuple[str, tuple], tuple[int, tuple]] = {}
        for i, key in batch:
            table, features = requests[i]
            name = self.table_name(table)
            by_name[name] = i
            if name not in request:
                attributes = [*key_names(table), *features, EVENT_TIMESTAMP_ATTRIBUTE]
                names = {
                    f"#a{n}": attribute for n, attribute in enumerate(dict.fromkeys(attributes))
                }
                request[name] = {
                    "Keys": [],
                    "ProjectionExpression": ", ".join(names),
                    "ExpressionAttributeNames": names,
                }
            attributes = key_attributes(table, key)
            request[name]["Keys"].append(attributes)
            back[(name, key_text(attributes, key_names(table)))] = (i, key)
        found = {}
        for name, items in self.batch_get_all(request):
            table = requests[by_name[name]][0]
            item_key = key_names(table)
            for item in items:
                found[back[(name, key_text(item, item_key))]] = item
        return found

    def batch_get_all(self, request: dict[str, Any]) -> Iterator[tuple[str, list[dict]]]:
        """(table name, items) of one BatchGetItem request until no key is left unprocessed,
        retrying those with backoff; a missing table or keys still unprocessed after
        `max_attempts` are StoreUnavailableError."""
        delay = 0.02
        for _attempt in range(self.max_attempts):
            try:
                response = self.client.batch_get_item(RequestItems=request)
            except ClientError as error:
                if error.response["Error"]["Code"] == "ResourceNotFoundException":
                    raise StoreUnavailableError(
                        f"online table(s) {sorted(request)} do not exist; materialize the online sync "
                        "or run `feature-store resync`"
                    ) from None
                raise
            yield from response["Responses"].items()
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise StoreUnavailableError(
            f"online tables {sorted(request)}: keys still unprocessed after {self.max_attempts} attempts"
        )


def key_text(attributes: Mapping[str, Mapping[str, str]], names: list[str]) -> tuple:
    """The key of an item as the text DynamoDB sends back (N and S values are both strings)."""
    return tuple(next(iter(attributes[name].values())) for name in names)


def _items(table: FeatureTable, rows: pa.Table) -> Iterator[dict[str, Any]]:
    for record_batch in rows.to_batches(max_chunksize=BATCH_WRITE_LIMIT * 40):
        yield from items_of(table, record_batch)


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
