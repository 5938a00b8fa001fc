{%- set window_days = feature_window_days() | int -%}
{%- set start_date = build_start_date() -%}
{%- set end_date = build_end_date() -%}

with

transactions as (
    select
        user_id,
        merchant_id,
        transaction_date,
        {{ amount_in_usd('amount', 'currency') }} as amount_usd
    from {{ source('raw', 'card_transactions') }}
    where transaction_date >= {{ dbt.dateadd('day', -window_days, start_date) }}
      and transaction_date < {{ end_date }}
),

daily_user_merchant as (
    select
        user_id,
        merchant_id,
        transaction_date,
        count(*) as transaction_count,
        sum(amount_usd) as amount_sum,
        max(amount_usd) as amount_max
    from transactions
    group by user_id, merchant_id, transaction_date
),

day_offsets as (
    {{ day_offsets(window_days) }}
),

-- A day's activity counts towards the feature dates of the 7 days that follow it. Offset 7
-- is the day it drops out of the window: it yields a row with zero counts, so a user whose
-- window just emptied gets an explicit zero instead of keeping a stale value.
contributions as (
    select
        daily.user_id,
        cast({{ dbt.dateadd('day', 'offsets.day_offset', 'daily.transaction_date') }} as date) as feature_date,
        case when offsets.day_offset < {{ window_days }} then daily.merchant_id end as merchant_id,
        case when offsets.day_offset < {{ window_days }} then daily.transaction_count end as transaction_count,
        case when offsets.day_offset < {{ window_days }} then daily.amount_sum end as amount_sum,
        case when offsets.day_offset < {{ window_days }} then daily.amount_max end as amount_max
    from daily_user_merchant as daily
    cross join day_offsets as offsets
),

windowed as (
    select
        user_id,
        feature_date,
        coalesce(sum(transaction_count), 0) as transaction_count,
        coalesce(sum(amount_sum), 0) as amount_sum,
        max(amount_max) as amount_max,
        count(distinct merchant_id) as distinct_merchant_count
    from contributions
    where feature_date >= {{ start_date }}
      and feature_date < {{ end_date }}
    group by user_id, feature_date
),

final as (
    select
        user_id,
        feature_date,
        {{ feature_timestamps('feature_date') }},
        cast(transaction_count as bigint) as transaction_count_7d,
        {{ round_to('amount_sum', 2) }} as transaction_amount_sum_7d,
        {{ round_to('cast(amount_sum as double) / nullif(transaction_count, 0)', 4) }} as transaction_amount_mean_7d,
        {{ round_to('amount_max', 2) }} as transaction_amount_max_7d,
        cast(distinct_merchant_count as bigint) as distinct_merchant_count_7d
    from windowed
)

select * from final
