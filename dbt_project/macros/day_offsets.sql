{#- A relation of whole numbers 0..n, portable across warehouses. -#}
{%- macro day_offsets(n) -%}
    {%- for offset in range(n + 1) %}
    select {{ offset }} as day_offset{% if not loop.last %} union all{% endif %}
    {%- endfor %}
{%- endmacro -%}
