{#- The two timestamps every feature table row carries. A daily value covers the whole
    partition day, so it becomes true at midnight after it (stamping the day's start would
    leak that day's rows into training at that time); created_at is when this run computed it. -#}
{%- macro feature_timestamps(partition_column='feature_date') -%}
        cast({{ dbt.dateadd('day', 1, partition_column) }} as {{ naive_timestamp() }}) as event_timestamp,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ naive_timestamp() }}) as created_at
{%- endmacro -%}

{#- The first and the day after the last feature_date this run builds (Dagster's window).
    A run passes them as environment variables read only when executing, so dbt's saved
    parse stays valid from run to run (changing --vars would force a full parse); the vars
    are the defaults of `dbt parse`, `dbt docs` and `dbt compile`. -#}
{%- macro build_start_date() -%} cast('{{ run_value("FEATURE_STORE_BUILD_START", "start_date") }}' as date) {%- endmacro -%}
{%- macro build_end_date() -%} cast('{{ run_value("FEATURE_STORE_BUILD_END", "end_date") }}' as date) {%- endmacro -%}

{%- macro run_value(env_name, var_name) -%}
    {%- if execute -%} {{ env_var(env_name, var(var_name)) }} {%- else -%} {{ var(var_name) }} {%- endif -%}
{%- endmacro -%}
