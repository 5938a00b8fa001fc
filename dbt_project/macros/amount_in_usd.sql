{#- Converts an amount to USD with the fixed rates of the `usd_rates` var, in exact decimals
    (cents times the rate): sums of them are the same on every engine, whatever order they
    add up in, which sums of doubles are not. -#}
{%- macro amount_in_usd(amount, currency) -%}
    cast({{ amount }} as decimal(18, 2)) * case {{ currency }}
    {%- for code, rate in var('usd_rates').items() %}
        when '{{ code }}' then cast({{ rate }} as decimal(9, 4))
    {%- endfor %}
    end
{%- endmacro -%}
