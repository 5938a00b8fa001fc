"""On-demand features as Dagster asset specs: computed when read, never materialized, shown
downstream of the feature tables they read so the graph says who depends on what."""

import dagster as dg

from feature_assets.kernel.contract import OnDemandFeature
from feature_assets.kernel.names import ON_DEMAND_GROUP, on_demand_asset_path, table_asset_path


def on_demand_spec(feature: OnDemandFeature) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=dg.AssetKey(on_demand_asset_path(feature.name)),
        deps=[dg.AssetKey(table_asset_path(t)) for t in sorted(feature.table_names)],
        description=(
            f"{feature.description}\n\nComputed when read (training sets and online reads) by "
            f"`{feature.function}`; request fields: "
            f"{', '.join(i.name for i in feature.request_inputs) or 'none'}."
        ),
        group_name=ON_DEMAND_GROUP,
        kinds={"python"},
        owners=[feature.owner] if feature.owner else [],
        metadata={
            "function": feature.function,
            "inputs": dg.TableMetadataValue(
                records=[
                    dg.TableRecord(
                        {"name": i.name, "type": i.logical_type, "source": i.feature or "request"}
                    )
                    for i in feature.inputs
                ],
                schema=dg.TableSchema(
                    columns=[
                        dg.TableColumn("name", "string"),
                        dg.TableColumn("type", "string"),
                        dg.TableColumn("source", "string"),
                    ]
                ),
            ),
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(name=o.name, type=o.type_name, description=o.description)
                    for o in feature.outputs
                ]
            ),
        },
    )
