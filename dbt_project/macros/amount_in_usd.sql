{#- Converts an amount to USD with the fixed rates of the `usd_rates` var. -#}
{%- macro amount_in_usd(amount, currency) -%}
    case {{ currency }}
    {%- for code, rate in var('usd_rates').items() %}
        when '{{ code }}' then {{ amount }} * {{ rate }}
    {%- endfor %}
    end
{%- endmacro -%}
