{%- set window_days = feature_window_days() | int -%}
{%- set start_date = build_start_date() -%}
{%- set end_date = build_end_date() -%}

with

-- One balance per customer and day: the sum over the customer's accounts, in USD.
daily_balances as (
    select
        customer_id,
        snapshot_date,
        sum({{ amount_in_usd('balance', 'currency') }}) as balance_usd
    from {{ source('raw', 'account_balances') }}
    where snapshot_date >= {{ dbt.dateadd('day', -window_days, start_date) }}
      and snapshot_date < {{ end_date }}
    group by customer_id, snapshot_date
),

day_offsets as (
    {{ day_offsets(window_days) }}
),

-- A day's balance counts towards the feature dates of the 30 days starting with it. Offset 30
-- is the day it leaves the window: a customer whose snapshots stopped gets one row saying
-- so (snapshot_days_30d = 0, balances null) instead of keeping a stale average.
contributions as (
    select
        daily.customer_id,
        cast({{ dbt.dateadd('day', 'offsets.day_offset', 'daily.snapshot_date') }} as date) as feature_date,
        case when offsets.day_offset < {{ window_days }} then daily.balance_usd end as balance_usd
    from daily_balances as daily
    cross join day_offsets as offsets
),

windowed as (
    select
        customer_id,
        feature_date,
        -- The exact sum, then one division in doubles: avg() differs between engines.
        cast(sum(balance_usd) as double) / count(balance_usd) as balance_avg,
        min(balance_usd) as balance_min,
        max(balance_usd) as balance_max,
        count(*) filter (where balance_usd < 0) as overdrawn_days,
        count(balance_usd) as snapshot_days
    from contributions
    where feature_date >= {{ start_date }}
      and feature_date < {{ end_date }}
    group by customer_id, feature_date
),

final as (
    select
        customer_id,
        feature_date,
        {{ feature_timestamps('feature_date') }},
        {{ round_to('balance_avg', 2) }} as avg_balance_30d,
        {{ round_to('balance_min', 2) }} as min_balance_30d,
        {{ round_to('balance_max', 2) }} as max_balance_30d,
        cast(overdrawn_days as bigint) as overdrawn_days_30d,
        cast(snapshot_days as bigint) as snapshot_days_30d
    from windowed
)

select * from final
