{#- Overrides dbt-duckdb's macro: each run stages its output under the run's own folder. -#}
{%- macro external_location(relation, config) -%}
  {{- var('staging_dir') }}/{{ relation.identifier }}.{{ config.get('format', 'parquet') }}
{%- endmacro -%}
