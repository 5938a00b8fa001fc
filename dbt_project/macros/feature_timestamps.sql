{#- The two timestamps every feature table row carries. A daily value covers the whole
    partition day, so it becomes true at midnight after it (stamping the day's start would
    leak that day's rows into training at that time); created_at is when this run computed it. -#}
{%- macro feature_timestamps(partition_column='feature_date') -%}
        cast({{ dbt.dateadd('day', 1, partition_column) }} as timestamp) as event_timestamp,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp) as created_at
{%- endmacro -%}

{#- The first and the day after the last feature_date this run builds (Dagster's window). -#}
{%- macro build_start_date() -%} cast('{{ var("start_date") }}' as date) {%- endmacro -%}
{%- macro build_end_date() -%} cast('{{ var("end_date") }}' as date) {%- endmacro -%}
