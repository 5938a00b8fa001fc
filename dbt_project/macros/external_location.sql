{#- Overrides dbt-duckdb's macro: each run stages its output where the offline store says,
    the `staged_path` var with `{table}` standing for the model's name. -#}
{%- macro external_location(relation, config) -%}
  {{- var('staged_path') | replace('{table}', relation.identifier) }}
{%- endmacro -%}
