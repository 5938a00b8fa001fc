{%- set window_days = feature_window_days() | int -%}
{%- set start_date = build_start_date() -%}
{%- set end_date = build_end_date() -%}

with

daily_spend as (
    select
        transactions.user_id,
        merchants.merchant_category,
        transactions.transaction_date,
        count(*) as transaction_count,
        sum({{ amount_in_usd('transactions.amount', 'transactions.currency') }}) as amount_sum
    from {{ source('raw', 'card_transactions') }} as transactions
    inner join {{ source('raw', 'merchants') }} as merchants
        on transactions.merchant_id = merchants.merchant_id
    where transactions.transaction_date >= {{ dbt.dateadd('day', -window_days, start_date) }}
      and transactions.transaction_date < {{ end_date }}
    group by transactions.user_id, merchants.merchant_category, transactions.transaction_date
),

day_offsets as (
    {{ day_offsets(window_days) }}
),

-- Offset 30 is the day a day's spend leaves the window: a zero row, as in the 7-day tables.
contributions as (
    select
        daily.user_id,
        daily.merchant_category,
        cast({{ dbt.dateadd('day', 'offsets.day_offset', 'daily.transaction_date') }} as date) as feature_date,
        case when offsets.day_offset < {{ window_days }} then daily.transaction_count end as transaction_count,
        case when offsets.day_offset < {{ window_days }} then daily.amount_sum end as amount_sum
    from daily_spend as daily
    cross join day_offsets as offsets
),

windowed as (
    select
        user_id,
        merchant_category,
        feature_date,
        coalesce(sum(transaction_count), 0) as transaction_count,
        coalesce(sum(amount_sum), 0) as amount_sum
    from contributions
    where feature_date >= {{ start_date }}
      and feature_date < {{ end_date }}
    group by user_id, merchant_category, feature_date
),

final as (
    select
        user_id,
        merchant_category,
        feature_date,
        {{ feature_timestamps('feature_date') }},
        cast(transaction_count as bigint) as transaction_count_30d,
        {{ round_to('amount_sum', 2) }} as spend_amount_sum_30d,
        {{ round_to('cast(amount_sum as double) / nullif(cast(sum(amount_sum) over (partition by user_id, feature_date) as double), 0)', 4) }}
            as share_of_spend_30d
    from windowed
)

select * from final
