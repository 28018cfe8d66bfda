{#- Media aggregates shared by media_channel_day (per channel) and media_day (all channels), so
    CPM, CPC, CPA, plan deviation and share of voice mean the same thing at both grains. -#}
{% macro media_measures() -%}
    sum(spend) as spend,
    sum(impressions) as impressions,
    sum(clicks) as clicks,
    sum(conversions) as conversions,
    sum(attributed_revenue) as attributed_revenue,
    1000 * sum(spend) / nullif(sum(impressions), 0) as cpm,
    sum(spend) / nullif(sum(clicks), 0) as cpc,
    sum(spend) / nullif(sum(conversions), 0) as cpa,
    sum(planned_spend) as planned_spend,
    -- actual - plan over the campaigns that have a plan: > 0 is overspend
    sum(spend) filter (where planned_spend is not null) - sum(planned_spend) as plan_deviation,
    100 * (sum(spend) filter (where planned_spend is not null) - sum(planned_spend))
        / nullif(sum(planned_spend), 0) as plan_deviation_pct,
    -- impression-weighted paid share of voice of the campaigns that report one
    sum(share_of_voice_pct * impressions)
        / nullif(sum(impressions) filter (where share_of_voice_pct is not null), 0) as paid_sov_pct,
    {%- for pacing in var('pacing_types') %}
    coalesce(bool_or(pacing_type = '{{ pacing }}' and spend > 0), false) as pacing_{{ pacing }},
    {%- endfor %}
    count(distinct campaign_id) filter (where spend > 0) as active_campaigns
{%- endmacro %}

{#- The wide media breakdowns of media_day: (column name, metric, dimension, value). The
    dimensions' values are the contract's allowed values (dbt_project.yml vars). -#}
{% macro media_breakdowns() -%}
    {%- set breakdowns = [] -%}
    {%- for metric in ['spend', 'impressions', 'clicks'] -%}
        {%- for group in var('channel_groups') -%}
            {%- do breakdowns.append((metric ~ '_group_' ~ group, metric, 'channel_group', group)) -%}
        {%- endfor -%}
        {%- for objective in var('campaign_objectives') -%}
            {%- do breakdowns.append((metric ~ '_obj_' ~ objective, metric, 'campaign_objective', objective)) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for pacing in var('pacing_types') -%}
        {%- do breakdowns.append(('spend_pacing_' ~ pacing, 'spend', 'pacing_type', pacing)) -%}
    {%- endfor -%}
    {{ return(breakdowns) }}
{%- endmacro %}

{#- media_day's flows: zero, not NULL, on a geo-day without media rows (geo_day, geo_week). -#}
{% macro media_flow_columns() -%}
    {{ return(['spend', 'impressions', 'clicks'] + media_breakdowns() | map(attribute=0) | list) }}
{%- endmacro %}
