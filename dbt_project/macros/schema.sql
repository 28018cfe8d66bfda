{#- Models land in the schema their folder names (staging, features), not in "<target>_<schema>":
    ingestion, dbt and the Python models all address one warehouse by these plain names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name is not none else target.schema }}
{%- endmacro %}
