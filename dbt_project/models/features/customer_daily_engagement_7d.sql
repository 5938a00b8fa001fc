{%- set window_days = feature_window_days() | int -%}
{%- set start_date = build_start_date() -%}
{%- set end_date = build_end_date() -%}

with

daily_activity as (
    select
        customer_id,
        event_date,
        count(*) as event_count,
        -- session ids embed the day, so daily distinct counts add up over the window
        count(distinct session_id) as session_count,
        count(*) filter (where event_type = 'feature_use') as feature_use_count,
        count(*) filter (where event_type = 'support_contact') as support_contact_count
    from {{ source('raw', 'app_events') }}
    where event_date >= {{ dbt.dateadd('day', -window_days, start_date) }}
      and event_date < {{ end_date }}
    group by customer_id, event_date
),

day_offsets as (
    {{ day_offsets(window_days) }}
),

-- As in user_daily_transactions_7d: offset 7 is the day a day's activity leaves the window,
-- so a customer who went quiet gets an explicit zero score instead of a stale one.
contributions as (
    select
        daily.customer_id,
        cast({{ dbt.dateadd('day', 'offsets.day_offset', 'daily.event_date') }} as date) as feature_date,
        case when offsets.day_offset < {{ window_days }} then daily.event_date end as active_date,
        case when offsets.day_offset < {{ window_days }} then daily.event_count end as event_count,
        case when offsets.day_offset < {{ window_days }} then daily.session_count end as session_count,
        case when offsets.day_offset < {{ window_days }} then daily.feature_use_count end as feature_use_count,
        case when offsets.day_offset < {{ window_days }} then daily.support_contact_count end as support_contact_count
    from daily_activity as daily
    cross join day_offsets as offsets
),

windowed as (
    select
        customer_id,
        feature_date,
        count(distinct active_date) as active_days,
        coalesce(sum(event_count), 0) as event_count,
        coalesce(sum(session_count), 0) as session_count,
        coalesce(sum(feature_use_count), 0) as feature_use_count,
        coalesce(sum(support_contact_count), 0) as support_contact_count
    from contributions
    where feature_date >= {{ start_date }}
      and feature_date < {{ end_date }}
    group by customer_id, feature_date
),

{#- 0..100: half for active days, 30 points for sessions (capped at 2 a day), 20 for feature
    use; in doubles on every engine (Spark would divide by a decimal literal in decimals). -#}
{%- set engagement_score %}
    100 * (
        0.5 * cast(active_days as double) / {{ window_days }}
        + 0.3 * least(cast(session_count as double) / {{ 2 * window_days }}, 1)
        + 0.2 * least(cast(feature_use_count as double) / 20, 1)
    )
{%- endset %}

final as (
    select
        customer_id,
        feature_date,
        {{ feature_timestamps('feature_date') }},
        {{ round_to(engagement_score, 1) }} as engagement_score_7d,
        cast(active_days as bigint) as active_days_7d,
        cast(session_count as bigint) as session_count_7d,
        cast(event_count as bigint) as event_count_7d,
        cast(support_contact_count as bigint) as support_contact_count_7d
    from windowed
)

select * from final
