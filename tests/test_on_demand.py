"""On-demand features: one function, the same values in training sets and online reads."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_assets.kernel.contract import (
    FeatureColumn,
    FeatureService,
    OnDemandFeature,
    OnDemandInput,
)
from feature_assets.kernel.errors import (
    EntityInputError,
    FeatureDefinitionError,
    OnDemandFunctionError,
)
from feature_assets.kernel.manifest import load_contract
from feature_assets.sdk import FeatureStore
from resources.offline_store import OfflineStore
from resources.online_store import OnlineStore
from tests.builders import feature_table_node, publish_rows, synthetic_table

TABLE = synthetic_table(
    name="user_daily_amounts_1d",
    ttl=None,
    features=("amount", "count"),
    feature_types={"amount": "float", "count": "int"},
)
MIX = OnDemandFeature(
    name="mixed",
    function="tests.on_demand_functions:mix",
    inputs=(
        OnDemandInput("amount", "float", f"{TABLE.name}:amount"),
        OnDemandInput("count", "int", f"{TABLE.name}:count"),
        OnDemandInput("rate", "float"),
        OnDemandInput("label", "str"),
        OnDemandInput("flag", "bool"),
    ),
    outputs=(
        FeatureColumn("scaled", "float"),
        FeatureColumn("label_size", "int"),
        FeatureColumn("flag_or_big", "bool"),
        FeatureColumn("label_upper", "str"),
    ),
)
OUTPUTS = [f"mixed:{o}" for o in MIX.feature_names]
WRITTEN = datetime(2026, 1, 1, 12)
ASKED_AT = datetime(2026, 1, 2)


def single_output(name: str, function: str) -> OnDemandFeature:
    return OnDemandFeature(
        name=name,
        function=f"tests.on_demand_functions:{function}",
        inputs=(OnDemandInput("amount", "float", f"{TABLE.name}:amount"),),
        outputs=(FeatureColumn("out", "float"),),
    )


def make_store(tmp_path, endpoint: str, services: dict | None = None) -> FeatureStore:
    others = [
        single_output("raising", "fails_on_13"),
        single_output("short", "one_short"),
        single_output("wordy", "words"),
    ]
    return FeatureStore(
        {TABLE.name: TABLE},
        OfflineStore(root=tmp_path / "offline", staging_root=tmp_path / "staging"),
        OnlineStore(endpoint_url=endpoint, table_prefix=f"t{uuid.uuid4().hex[:8]}_"),
        services,
        {f.name: f for f in (MIX, *others)},
    )


def store_rows(store: FeatureStore, stored: dict[int, tuple[float | None, int | None]]) -> None:
    rows = [
        {
            "user_id": user,
            "feature_date": date(2026, 1, 1),
            "event_timestamp": WRITTEN,
            "created_at": WRITTEN,
            "amount": amount,
            "count": count,
        }
        for user, (amount, count) in stored.items()
    ]
    store.online.ensure_table(TABLE)
    if rows:
        publish_rows(store.offline, TABLE, rows)
        store.online.write_rows(TABLE, store.offline.latest_rows(TABLE))


def both_paths(store: FeatureStore, entities: list[dict], features: list[str]):
    """(training-set rows, online rows) for the same entities, as plain Python values."""
    frame = pa.Table.from_pylist(
        [{**e, "event_timestamp": ASKED_AT} for e in entities],
        schema=pa.schema(
            [
                ("user_id", pa.int64()),
                ("rate", pa.float64()),
                ("label", pa.string()),
                ("flag", pa.bool_()),
                ("event_timestamp", pa.timestamp("us")),
            ]
        ),
    )
    training = store.get_historical_features(frame, features).to_arrow().to_pylist()
    online = store.get_online_features(features, entities, now=ASKED_AT.replace(tzinfo=UTC)).rows
    return training, online


# DynamoDB numbers stop at a magnitude of 1e-130: smaller doubles cannot be stored online.
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(
    lambda x: x == 0 or abs(x) > 1e-100
)
entity = st.fixed_dictionaries(
    {
        "rate": st.none() | finite,
        "label": st.none() | st.text(max_size=5),
        "flag": st.none() | st.booleans(),
    }
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stored=st.dictionaries(
        st.integers(1, 6),
        st.tuples(st.none() | finite, st.none() | st.integers(-1000, 1000)),
        max_size=6,
    ),
    asked=st.lists(st.tuples(st.integers(1, 8), entity), min_size=1, max_size=6),
)
def test_training_and_serving_compute_identical_values(
    tmp_path_factory, online_server, stored, asked
) -> None:
    store = make_store(tmp_path_factory.mktemp("od"), online_server.endpoint)
    store_rows(store, stored)
    entities = [{"user_id": user, **fields} for user, fields in asked]
    training, online = both_paths(store, entities, [f"{TABLE.name}:amount", *OUTPUTS])
    for trained, served in zip(training, online, strict=True):
        assert {k: trained[k] for k in served} == served  # nulls included, floats to the bit
    # The oracle of one output, written out: amount x rate + count, null if any is null.
    for (user, fields), served in zip(asked, online, strict=True):
        amount, count = stored.get(user, (None, None))
        parts = (amount, fields["rate"], count)
        expected = None if None in parts else amount * fields["rate"] + count
        assert served["scaled"] == expected


def test_stored_inputs_not_asked_for_are_read_but_not_returned(tmp_path, online_server) -> None:
    store = make_store(tmp_path, online_server.endpoint)
    store_rows(store, {1: (2.0, 3)})
    entities = [{"user_id": 1, "rate": 10.0, "label": "ab", "flag": False}]
    training, online = both_paths(store, entities, ["mixed:scaled"])
    assert online == [{**entities[0], "scaled": 23.0}]
    assert training[0]["scaled"] == 23.0
    assert set(training[0]) == {"user_id", "rate", "label", "flag", "event_timestamp", "scaled"}


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (
            "raising:out",
            "tests.on_demand_functions:fails_on_13 raised ValueError: unlucky amount at entity row 1",
        ),
        (
            "short:out",
            "output 'out' (tests.on_demand_functions:one_short): returned shape (2,) for 3 entity rows",
        ),
        (
            "wordy:out",
            "output 'out' (tests.on_demand_functions:words): not a float: 'many' at entity row 1",
        ),
    ],
    ids=["raises", "wrong length", "wrong type"],
)
def test_a_bad_function_is_named_with_its_feature_and_entity_row(
    tmp_path, online_server, feature, message
) -> None:
    store = make_store(tmp_path, online_server.endpoint)
    store_rows(store, {1: (1.0, 0), 2: (13.0, 0), 3: (2.0, 0)})
    entities = [{"user_id": u, "rate": 1.0, "label": None, "flag": None} for u in (1, 2, 3)]
    for path in ("training", "online"):
        with pytest.raises(OnDemandFunctionError) as raised:
            if path == "training":
                both_paths(store, entities, [feature])
            else:
                store.get_online_features([feature], entities)
        assert message in str(raised.value), path
        assert f"on-demand feature {feature.split(':')[0]!r}" in str(raised.value)


def test_request_fields_missing_or_mistyped_are_caller_errors(tmp_path, online_server) -> None:
    store = make_store(tmp_path, online_server.endpoint)
    with pytest.raises(EntityInputError, match="entity row 0 lacks request field 'rate'"):
        store.get_online_features(["mixed:scaled"], [{"user_id": 1, "label": None, "flag": None}])
    with pytest.raises(EntityInputError, match="request field 'rate' of entity row 1 is 'x'"):
        store.get_online_features(
            ["mixed:scaled"],
            [
                {"user_id": 1, "rate": 1, "label": None, "flag": None},
                {"user_id": 1, "rate": "x", "label": None, "flag": None},
            ],
        )
    frame = pa.table(
        {"user_id": [1], "event_timestamp": [ASKED_AT], "label": ["a"], "flag": [True]}
    )
    with pytest.raises(EntityInputError, match="entity rows lack request field column 'rate'"):
        store.get_historical_features(frame, ["mixed:scaled"])
    frame = frame.append_column("rate", pa.array(["1.5"]))
    with pytest.raises(
        EntityInputError, match="request field 'rate' is entity column 'rate' of type string"
    ):
        store.get_historical_features(frame, ["mixed:scaled"]).to_arrow()


def test_streamed_parquet_equals_the_frame(tmp_path, online_server) -> None:
    store = make_store(tmp_path, online_server.endpoint)
    store_rows(store, {u: (float(u), u) for u in range(1, 6)})
    frame = pa.table(
        {
            "user_id": list(range(1, 9)),
            "event_timestamp": [ASKED_AT] * 8,
            "rate": [0.5] * 8,
            "label": ["x", None] * 4,
            "flag": [True, None] * 4,
        }
    )
    result = store.get_historical_features(frame, OUTPUTS)
    path = result.to_parquet(tmp_path / "set.parquet")
    import pyarrow.parquet as pq

    assert pq.read_table(path).to_pylist() == result.to_arrow().to_pylist()
    assert result.columns == [*frame.column_names, *MIX.feature_names]
    assert list(result.to_pandas().columns) == result.columns


def manifest_with(services_meta: dict, on_demand_meta: dict | None = None) -> dict:
    """A dbt manifest holding the demo-like table, one on-demand feature and one service."""
    table_node = feature_table_node(
        "user_daily_amounts_1d",
        ["user_id"],
        {"amount": "double"},
        patch_path="demo://models/features/user_daily_amounts_1d.yml",
    )
    exposures = {
        "exposure.demo.svc": {
            "name": "svc",
            "original_file_path": "models/features/feature_services.yml",
            "meta": {"feature_service": services_meta},
        },
        "exposure.demo.usd": {
            "name": "usd",
            "original_file_path": "models/features/on_demand_features.yml",
            "meta": {
                "on_demand_feature": on_demand_meta
                or {
                    "function": "tests.on_demand_functions:one_short",
                    "inputs": [{"name": "amount", "feature": "user_daily_amounts_1d:amount"}],
                    "outputs": [{"name": "out", "data_type": "double"}],
                }
            },
        },
    }
    return {"nodes": {"model.demo.user_daily_amounts_1d": table_node}, "exposures": exposures}


def test_a_service_naming_an_unknown_on_demand_output_fails_at_load() -> None:
    contract = load_contract(manifest_with({"features": ["usd:out"]}))
    assert contract.services["svc"].on_demand_names == frozenset({"usd"})
    assert contract.services["svc"].table_names == frozenset()
    with pytest.raises(FeatureDefinitionError) as raised:
        load_contract(manifest_with({"features": ["usd:nope"]}))
    assert str(raised.value) == (
        "feature service 'svc' (models/features/feature_services.yml), field 'features': "
        "on-demand feature 'usd' has no output 'nope'"
    )


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (
            {"function": "no colon", "outputs": [{"name": "o", "data_type": "double"}]},
            "field 'function'",
        ),
        (
            {
                "function": "m:f",
                "inputs": [{"name": "a", "feature": "user_daily_amounts_1d:nope"}],
                "outputs": [{"name": "o", "data_type": "double"}],
            },
            "field 'inputs.a.feature': feature table 'user_daily_amounts_1d' has no feature 'nope'",
        ),
        (
            {
                "function": "m:f",
                "inputs": [{"name": "a", "request": "money"}],
                "outputs": [{"name": "o", "data_type": "double"}],
            },
            "field 'inputs.a.request': unsupported data_type 'money'",
        ),
        ({"function": "m:f", "inputs": [], "outputs": []}, "field 'outputs': lists no output"),
    ],
    ids=["function path", "unknown stored input", "request type", "no output"],
)
def test_a_bad_on_demand_definition_fails_at_load_naming_it(meta, message) -> None:
    with pytest.raises(FeatureDefinitionError) as raised:
        load_contract(manifest_with({"features": ["user_daily_amounts_1d:amount"]}, meta))
    assert "on-demand feature 'usd' (models/features/on_demand_features.yml)" in str(raised.value)
    assert message in str(raised.value)


def test_a_function_that_does_not_import_fails_when_the_project_loads() -> None:
    from resources.on_demand import check_functions

    feature = single_output("ghost", "nothing_here")
    with pytest.raises(
        FeatureDefinitionError, match="'tests.on_demand_functions:nothing_here' is not a function"
    ):
        check_functions({"ghost": feature})


def test_a_service_of_stored_and_on_demand_features(tmp_path, online_server) -> None:
    service = FeatureService(
        "svc", (f"{TABLE.name}:count", "mixed:scaled"), on_demand_names=frozenset({"mixed"})
    )
    store = make_store(tmp_path, online_server.endpoint, {"svc": service})
    store_rows(store, {1: (2.0, 3)})
    entities = [{"user_id": 1, "rate": 2.0, "label": None, "flag": None}]
    training, online = both_paths(store, entities, "svc")
    assert online[0]["count"] == training[0]["count"] == 3
    assert online[0]["scaled"] == training[0]["scaled"] == 7.0


def test_the_demo_functions_on_one_request() -> None:
    from feature_assets import on_demand_features as demo

    assert demo.amount_in_usd(pa.array([10.0]).to_numpy(), pa.array([1.1]).to_numpy())[
        "amount_usd"
    ].tolist() == [11.0]
    tenure = demo.customer_tenure(
        pa.array([date(2025, 1, 1)]).to_numpy(zero_copy_only=False),
        pa.array([date(2025, 1, 1) + timedelta(days=40)]).to_numpy(zero_copy_only=False),
    )
    assert tenure["tenure_days"].tolist() == [40.0]


def test_on_demand_over_http_reads_request_fields_from_the_entity_rows(
    tmp_path, online_server
) -> None:
    import json
    import threading
    import urllib.request

    from feature_assets.feature_server import make_server

    store = make_store(tmp_path, online_server.endpoint)
    store_rows(store, {1: (2.0, 3)})
    server = make_server(store, "127.0.0.1", 0, token="t")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        body = {
            "features": ["mixed:scaled", "mixed:label_upper"],
            "entities": [{"user_id": 1, "rate": 10, "label": "ab", "flag": None}],
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.server_address[1]}/get-online-features",
            json.dumps(body).encode(),
            method="POST",
        )
        request.add_header("Authorization", "Bearer t")
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert answer["results"][0]["scaled"] == 23.0
        assert answer["results"][0]["label_upper"] == "AB"
    finally:
        server.shutdown()
        server.server_close()
