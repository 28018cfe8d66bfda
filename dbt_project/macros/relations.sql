{#- Refs and sources without the catalog. DuckDB stores a view's SQL as written, and the catalog is
    the warehouse file's name: a staging view that named it ("warehouse".raw.geo) stopped working
    once the file was copied or renamed (Binder Error: Catalog "warehouse" does not exist). -#}
{% macro ref() %}
  {%- do return(builtins.ref(*varargs, **kwargs).include(database=False)) -%}
{% endmacro %}

{% macro source(source_name, table_name) %}
  {%- do return(builtins.source(source_name, table_name).include(database=False)) -%}
{% endmacro %}
