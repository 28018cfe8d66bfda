{#- select <the contract's columns of raw.T> from raw.T. The column list is the source's
    (models/sources.yml, kept equal to the landing contract by a test), so a staging view drops
    raw's lineage columns and any extra columns a file carried, and a contract change is one edit. -#}
{% macro staging_select(table_name) -%}
    {%- set columns = [] -%}
    {%- if execute -%}
        {%- set source_node = graph.sources['source.mmm_platform.raw.' ~ table_name] -%}
        {%- set columns = source_node.columns.keys() | list -%}
    {%- endif -%}
    select {{ columns | join(', ') if columns else '*' }}
    from {{ source('raw', table_name) }}
{%- endmacro %}
