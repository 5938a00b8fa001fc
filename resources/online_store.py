"""The online store: one DynamoDB table per feature table, items readable by any boto3 client.

Item layout: the entity keys are the item key (hash, or hash + range for two keys); every
feature is a native attribute (number, string, bool or null); `event_timestamp` and
`created_timestamp` are ISO-8601 UTC strings; `expires_at` (epoch seconds) is registered as
the table's DynamoDB TTL attribute. DynamoDB deletes expired items hours or days late, so
reads apply the TTL themselves from `event_timestamp`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import dagster as dg
import pyarrow as pa
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import PrivateAttr

from feature_assets.contract import (
    CREATED_TIMESTAMP_ATTRIBUTE,
    EVENT_TIMESTAMP_ATTRIBUTE,
    EXPIRY_ATTRIBUTE,
    FeatureTable,
)

BATCH_GET_LIMIT = 100
KEY_ATTRIBUTE_TYPES = {"int": "N", "str": "S"}


class OnlineStoreError(RuntimeError):
    """The online store refused or could not complete a request."""


class OnlineStore(dg.ConfigurableResource):
    """DynamoDB (or a DynamoDB-compatible server) through the low-level boto3 client."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    table_prefix: str = "featurestore_"
    max_attempts: int = 8

    _client: Any = PrivateAttr(default=None)
    _resource: Any = PrivateAttr(default=None)

    # --- connection ----------------------------------------------------------------------

    def _session(self) -> boto3.session.Session:
        session = boto3.session.Session(region_name=self.region)
        if self.endpoint_url and session.get_credentials() is None:
            # A local server accepts any credentials; AWS uses the normal credential chain.
            session = boto3.session.Session(
                region_name=self.region, aws_access_key_id="local", aws_secret_access_key="local"
            )
        return session

    def _config(self) -> Config:
        return Config(
            retries={"max_attempts": self.max_attempts, "mode": "adaptive"},
            max_pool_connections=32,
            connect_timeout=5,
            read_timeout=30,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._session().client(
                "dynamodb", endpoint_url=self.endpoint_url, config=self._config()
            )
        return self._client

    @property
    def resource(self) -> Any:
        if self._resource is None:
            self._resource = self._session().resource(
                "dynamodb", endpoint_url=self.endpoint_url, config=self._config()
            )
        return self._resource

    # --- tables --------------------------------------------------------------------------

    def table_name(self, table: FeatureTable) -> str:
        return f"{self.table_prefix}{table.name}"

    def ensure_table(self, table: FeatureTable) -> None:
        """Create the table (and register its TTL attribute) if it does not exist yet."""
        if len(table.keys) > 2:
            raise OnlineStoreError(
                f"feature table {table.name!r}: online tables support one or two keys, "
                f"not {len(table.keys)} ({list(table.keys)})"
            )
        name = self.table_name(table)
        try:
            self.client.describe_table(TableName=name)
            return
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        key_schema = [{"AttributeName": table.keys[0], "KeyType": "HASH"}]
        if len(table.keys) == 2:
            key_schema.append({"AttributeName": table.keys[1], "KeyType": "RANGE"})
        try:
            self.client.create_table(
                TableName=name,
                KeySchema=key_schema,
                AttributeDefinitions=[
                    {
                        "AttributeName": key,
                        "AttributeType": KEY_ATTRIBUTE_TYPES[table.key_types[key]],
                    }
                    for key in table.keys
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
        self.client.get_waiter("table_exists").wait(TableName=name)
        if table.ttl is not None:
            self.client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRY_ATTRIBUTE},
            )

    def delete_table(self, table: FeatureTable) -> None:
        try:
            self.client.delete_table(TableName=self.table_name(table))
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise

    # --- writes --------------------------------------------------------------------------

    def write_rows(self, table: FeatureTable, rows: pa.Table) -> int:
        """Write rows as items (already chosen newer-wins by the offline store); returns the count.

        Batch writes are unconditional: newer-wins is decided before, from the offline store,
        and one writer per table (a Dagster pool) keeps that decision valid until written.
        """
        self.ensure_table(table)
        if rows.num_rows == 0:
            return 0
        dynamo_table = self.resource.Table(self.table_name(table))
        written = 0
        with dynamo_table.batch_writer(overwrite_by_pkeys=list(table.keys)) as batch:
            for row in rows.to_pylist():
                batch.put_item(Item=to_item(table, row))
                written += 1
        return written

    # --- reads ---------------------------------------------------------------------------

    def read(
        self,
        table: FeatureTable,
        entity_keys: Sequence[Mapping[str, Any]],
        features: Sequence[str],
        *,
        now: datetime | None = None,
    ) -> list[dict[str, Any] | None]:
        """One result per requested entity, in order: its feature values, or None if missing or expired."""
        now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
        keys = [_typed_key(table, entity) for entity in entity_keys]
        names = [*table.keys, *features, EVENT_TIMESTAMP_ATTRIBUTE]
        placeholders = {f"#a{i}": name for i, name in enumerate(names)}
        projection = ", ".join(placeholders)
        found: dict[tuple, dict[str, Any]] = {}
        unique_keys = list(dict.fromkeys(keys))
        for start in range(0, len(unique_keys), BATCH_GET_LIMIT):
            chunk = unique_keys[start : start + BATCH_GET_LIMIT]
            for item in self._batch_get(table, chunk, projection, placeholders):
                found[tuple(_from_attribute(item[k], table.key_types[k]) for k in table.keys)] = (
                    item
                )
        types = {feature: table.feature(feature).logical_type for feature in features}
        results: list[dict[str, Any] | None] = []
        for key in keys:
            item = found.get(key)
            if item is None or _expired(table, item, now):
                results.append(None)
                continue
            results.append(
                {
                    feature: _from_attribute(item.get(feature, {"NULL": True}), types[feature])
                    for feature in features
                }
            )
        return results

    def _batch_get(
        self, table: FeatureTable, keys: list[tuple], projection: str, names: dict[str, str]
    ) -> Iterable[dict[str, Any]]:
        name = self.table_name(table)
        request = {
            name: {
                "Keys": [
                    {
                        k: _to_key_attribute(table, k, v)
                        for k, v in zip(table.keys, key, strict=True)
                    }
                    for key in keys
                ],
                "ProjectionExpression": projection,
                "ExpressionAttributeNames": names,
            }
        }
        delay = 0.02
        for _attempt in range(self.max_attempts):
            try:
                response = self.client.batch_get_item(RequestItems=request)
            except ClientError as error:
                if error.response["Error"]["Code"] == "ResourceNotFoundException":
                    raise OnlineStoreError(
                        f"feature table {table.name!r}: online table {name!r} does not exist; "
                        "materialize its online sync or run `feature-store resync`"
                    ) from None
                raise
            yield from response["Responses"].get(name, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise OnlineStoreError(
            f"feature table {table.name!r}: keys still unprocessed after {self.max_attempts} attempts"
        )


def to_item(table: FeatureTable, row: Mapping[str, Any]) -> dict[str, Any]:
    """A feature row as a DynamoDB item of native types (boto3 resource form)."""
    item: dict[str, Any] = {key: row[key] for key in table.keys}
    for feature in table.features:
        item[feature.name] = _to_native(row.get(feature.name))
    event_time: datetime = row[table.timestamp]
    item[EVENT_TIMESTAMP_ATTRIBUTE] = _iso(event_time)
    if table.created_timestamp and row.get(table.created_timestamp) is not None:
        item[CREATED_TIMESTAMP_ATTRIBUTE] = _iso(row[table.created_timestamp])
    if table.ttl is not None:
        # Never before the logical expiry: DynamoDB's deletion is only a clean-up.
        expiry = event_time.replace(tzinfo=UTC) + table.ttl
        item[EXPIRY_ATTRIBUTE] = math.ceil(expiry.timestamp())
    return item


def _to_native(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        # repr round-trips exactly, so the online value equals the offline double.
        return Decimal(repr(value))
    if isinstance(value, datetime):
        return _iso(value)
    return value


def _iso(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.removesuffix("Z"))


def _expired(table: FeatureTable, item: Mapping[str, Any], now: datetime) -> bool:
    if table.ttl is None:
        return False
    event_time = _parse_iso(item[EVENT_TIMESTAMP_ATTRIBUTE]["S"])
    # Same rule as the training-set join at entity time `now`: event_time >= now - ttl.
    return event_time < now - table.ttl


def _typed_key(table: FeatureTable, entity: Mapping[str, Any]) -> tuple:
    values = []
    for key in table.keys:
        if key not in entity:
            raise KeyError(
                f"feature table {table.name!r}: entity row {dict(entity)!r} has no key {key!r}"
            )
        value = entity[key]
        expected = table.key_types[key]
        if expected == "int":
            if (
                isinstance(value, bool)
                or not isinstance(value, int | Decimal)
                and not (hasattr(value, "dtype") and value.dtype.kind in "iu")
            ):
                raise TypeError(
                    f"feature table {table.name!r}: key {key!r} must be an integer, got {value!r}"
                )
            value = int(value)
        elif not isinstance(value, str):
            raise TypeError(
                f"feature table {table.name!r}: key {key!r} must be a string, got {value!r}"
            )
        values.append(value)
    return tuple(values)


def _to_key_attribute(table: FeatureTable, key: str, value: Any) -> dict[str, str]:
    return {"N": str(value)} if table.key_types[key] == "int" else {"S": value}


def _from_attribute(attribute: Mapping[str, Any], logical_type: str) -> Any:
    """A DynamoDB attribute as a plain Python value of the contract's type (never Decimal)."""
    ((kind, value),) = attribute.items()
    if kind == "NULL":
        return None
    if kind == "N":
        return int(value) if logical_type == "int" else float(value)
    return value
