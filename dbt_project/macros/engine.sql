{#- What differs between the build engines, and nothing else: the models are the same SQL on
    DuckDB (dbt-duckdb) and on Spark (dbt-spark). -#}

{#- A timestamp without a zone. Spark's `timestamp` is zoned (it would be written to Parquet
    as UTC-adjusted, which the publish check refuses); `timestamp_ntz` is the naive one. -#}
{%- macro naive_timestamp() -%} {{ return(adapter.dispatch('naive_timestamp')()) }} {%- endmacro -%}
{%- macro default__naive_timestamp() -%} timestamp {%- endmacro -%}
{%- macro spark__naive_timestamp() -%} timestamp_ntz {%- endmacro -%}

{#- A number as a double rounded to `digits` decimals, the same on every engine: DuckDB's
    round(x, n) of a double is round-half-away(x * 10^n) / 10^n in doubles, and Spark's
    rounds the double's exact decimal value instead, which differs for values near a half. -#}
{%- macro round_to(expression, digits) -%} {{ return(adapter.dispatch('round_to')(expression, digits)) }} {%- endmacro -%}
{%- macro default__round_to(expression, digits) -%} round(cast({{ expression }} as double), {{ digits }}) {%- endmacro -%}
{%- macro spark__round_to(expression, digits) -%}
    (round(cast({{ expression }} as double) * {{ 10 ** digits }}D, 0) / {{ 10 ** digits }}D)
{%- endmacro -%}

{#- Overrides dbt-spark's macro: a Spark run stages a table where the offline store says, as
    dbt-duckdb's `external_location` does. -#}
{%- macro spark__location_clause() -%}
    location '{{ external_location(this, config) }}'
{%- endmacro -%}

{#- On Spark, the `raw` sources as views over their landing folders (DuckDB reads them
    through each source's `external_location`). Spark finds the day folders
    (`transaction_date=...`) as partition columns, as DuckDB's hive_partitioning does. -#}
{%- macro landing_views() -%}
    {%- if execute and target.type == 'spark' -%}
        {%- set landing = env_var('FEATURE_STORE_LANDING_DIR', var('landing_dir')) -%}
        {%- do run_query('create database if not exists raw') -%}
        {%- for source in graph.sources.values() if source.source_name == 'raw' -%}
            {%- do run_query('create or replace view raw.' ~ source.name ~ ' as select * from parquet.`' ~ landing ~ '/' ~ source.name ~ '`') -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
