"""`feature-store demo`: the whole flow on generated data, from raw files to reads."""

import argparse
import os
import random
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import boto3
import pandas as pd

from feature_assets.cli import render
from feature_assets.cli.commands import embedded_port, monitor, run_pipeline, yesterday
from feature_assets.cli.parsing import WINDOW_WARMUP_DAYS
from feature_assets.demo_data import DemoDataSpec, generate_landing_data
from feature_assets.monitoring.sources import served_online
from feature_assets.registry import Registry
from feature_assets.sdk import FeatureStore
from resources.local_dynamodb import start_server
from resources.settings import Settings, record_start_date

DEMO_TABLE = "user_daily_transactions_7d"
DEMO_FEATURES = [
    f"{DEMO_TABLE}:transaction_count_7d",
    f"{DEMO_TABLE}:transaction_amount_sum_7d",
    f"{DEMO_TABLE}:transaction_amount_mean_7d",
    f"{DEMO_TABLE}:distinct_merchant_count_7d",
]
CHURN_SERVICE = "churn_prediction_v1"
FRAUD_SERVICE = "fraud_detection_v2"


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    started = time.monotonic()
    server = start_server(settings.home, embedded_port(settings), args.server)
    print(f"[1/6] online store: {server.kind} on {server.endpoint} (pid {server.pid})")
    last = yesterday()
    first = last - timedelta(days=args.days - 1)
    if not os.environ.get("FEATURE_STORE_START_DATE"):
        # Dagster's partitions start at the first day built, so the UI shows 100% of them.
        settings = replace(settings, partition_start_date=record_start_date(settings.home, first))
    spec = DemoDataSpec(
        users=args.users,
        transactions_per_day=args.transactions_per_day,
        app_events_per_day=3 * args.users,
    )
    # Land a week more than we build so the first day's 7-day window is complete.
    generate_landing_data(
        settings.landing_dir,
        first - timedelta(days=WINDOW_WARMUP_DAYS),
        last + timedelta(days=1),
        spec,
    )
    print(
        "[2/6] landed card transactions, account balances and app events "
        f"{first - timedelta(days=WINDOW_WARMUP_DAYS)}..{last}, and the merchant list"
    )

    if not run_pipeline(settings, first, last, verbose=args.verbose):
        return 1
    print(f"[3/6] built, validated, published and synced {args.days} daily partitions")

    store = FeatureStore.from_settings(settings)
    table = store.tables[DEMO_TABLE]
    known_user = int(store.offline.read_partition(table, last)["user_id"].min())
    client = boto3.client(
        "dynamodb",
        endpoint_url=settings.dynamodb_endpoint,
        region_name=settings.region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
    )
    item = client.get_item(
        TableName=store.online.table_name(table), Key={"user_id": {"N": str(known_user)}}
    )["Item"]
    print(
        f"[4/6] plain boto3 get_item on {store.online.table_name(table)} for user_id={known_user}:"
    )
    for name, value in item.items():
        print(f"        {name:28} {value}")
    online = store.get_online_features(
        DEMO_FEATURES, [{"user_id": known_user}, {"user_id": known_user + 1}]
    )
    print("      SDK get_online_features:")
    print(online.to_df().to_string(index=False))
    churn = store.get_online_features(
        CHURN_SERVICE, [{"customer_id": known_user}, {"customer_id": known_user + 1}]
    )
    print(
        f"      feature service {CHURN_SERVICE} (co-located: both tables in one item, "
        "one BatchGetItem):"
    )
    print(churn.to_df().to_string(index=False))
    scored = [{"user_id": known_user, "amount": 120.0, "usd_rate": 1.08}]
    fraud = store.get_online_features(FRAUD_SERVICE, scored)
    print(f"      feature service {FRAUD_SERVICE} (on-demand features from request fields):")
    print(fraud.to_df().to_string(index=False))
    # A push carries the keys, the event time and every feature of the table.
    everything = [f"{DEMO_TABLE}:{feature}" for feature in table.feature_names]
    fresh = store.get_online_features(everything, [{"user_id": known_user}]).rows[0]
    fresh["transaction_count_7d"] = (fresh["transaction_count_7d"] or 0) + 1
    fresh["event_timestamp"] = pd.Timestamp.now("UTC").floor("s")
    pushed = store.push(DEMO_TABLE, [fresh])
    after = store.get_online_features([DEMO_FEATURES[0]], [{"user_id": known_user}])
    print(
        f"      push of a fresh value ({pushed.written} item written): "
        f"transaction_count_7d is now {after.rows[0]['transaction_count_7d']}"
    )

    users = sorted(store.offline.read_partition(table, last)["user_id"].head(4).tolist())
    entity_df = pd.DataFrame(
        {
            "user_id": [u for u in users for _ in range(2)],
            "event_timestamp": [
                pd.Timestamp(day) + pd.Timedelta(hours=12)
                for _ in users
                for day in (first + timedelta(days=(args.days - 1) // 2), last)
            ],
            "amount": [25.0, 480.0] * len(users),
            "usd_rate": [1.0, 1.08] * len(users),
            "is_fraud": [0, 1] * len(users),
        }
    )
    training = store.get_historical_features(entity_df, FRAUD_SERVICE).to_pandas()
    print(f"[5/6] training set of {FRAUD_SERVICE} (point-in-time correct), head:")
    print(training.head(8).to_string(index=False))
    monitored = simulate_serving(settings, store, last, days=min(args.days, 14))
    print(
        f"[6/6] monitoring: {monitored} reads served (and logged) per online service, each "
        "model's training set saved as its reference; `feature-store monitor`:"
    )
    parity_held = monitor(settings, datetime.now(UTC).date())
    print("\nregistry (`feature-store tables`; also `features`, `describe`, `search`, `catalog`):")
    registry = Registry(store.tables, store.services, store.offline, store.contract.on_demand)
    render.print_rows(registry.table_summaries(), False)
    print("\non-demand features (computed when read):")
    render.print_rows(registry.on_demand_summaries(), False)
    print(
        f"\ndemo finished in {time.monotonic() - started:.0f}s. Open the Dagster UI with `make ui` "
        f"(http://127.0.0.1:3000); stop the online store with `make stop`."
    )
    return 0 if parity_held else 1


SERVED_READS = 1_000  # entity reads per online service, in requests of 100
TRAINING_ROWS = 2_000  # rows of each model's training set, over its last `days` days


def simulate_serving(settings: Settings, store: FeatureStore, last: date, *, days: int) -> int:
    """A model's life in miniature, for the monitoring report: each online service's
    training set is saved (the model trained on it: its drift reference), then reads of it
    are served and logged."""
    rng = random.Random(7)
    people = sorted(
        set(store.offline.read_partition(store.tables[DEMO_TABLE], last)["user_id"].tolist())
    )
    logged = FeatureStore.from_settings(replace(settings, serving_log_rate=1.0))
    today = datetime.now(UTC).date()
    for name, service in sorted(store.services.items()):
        if not served_online(store.contract, service):
            continue  # read offline only: monitored over a window of its tables
        keys = sorted({k for t in service.table_names for k in store.tables[t].keys})
        training = pd.DataFrame(
            [
                {
                    **dict.fromkeys(keys, rng.choice(people)),
                    "event_timestamp": pd.Timestamp(last - timedelta(days=rng.randrange(days)))
                    + pd.Timedelta(hours=12),
                    **_request_fields(rng, last),
                }
                for _ in range(TRAINING_ROWS)
            ]
        )
        store.save_training_set(settings.home / "training_sets" / name, training, name)
        reads = [
            {**dict.fromkeys(keys, rng.choice(people)), **_request_fields(rng, today)}
            for _ in range(SERVED_READS)
        ]
        for start in range(0, len(reads), 100):
            logged.get_online_features(name, reads[start : start + 100])
    logged.close()
    return SERVED_READS


def _request_fields(rng: random.Random, day: date) -> dict:
    """What a caller passes with each read of a v2 service (unused fields are ignored)."""
    return {
        "amount": round(rng.lognormvariate(3.5, 1.0), 2),
        "usd_rate": round(rng.uniform(1.0, 1.1), 4),
        "customer_since": day - timedelta(days=rng.randrange(30, 3_000)),
        "request_date": day,
    }
