{#- Overrides dbt-duckdb's macro: each run stages its output where the offline store says,
    its FEATURE_STORE_STAGED_PATH (the `staged_path` var outside runs) with `{table}`
    standing for the model's name. -#}
{%- macro external_location(relation, config) -%}
  {{- run_value("FEATURE_STORE_STAGED_PATH", "staged_path") | replace('{table}', relation.identifier) }}
{%- endmacro -%}
