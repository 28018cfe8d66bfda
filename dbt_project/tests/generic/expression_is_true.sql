{#- Every row satisfies `expression` (rows where it is NULL pass: missing inputs are not errors). -#}
{% test expression_is_true(model, expression) %}
select *
from {{ model }}
where not ({{ expression }})
{% endtest %}
