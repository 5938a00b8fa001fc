{#- The window at the end of a feature table's name (entity_grain_metric_window, e.g.
    `_7d`), in days. The contract reads the same name, so the window is written once. -#}
{%- macro feature_window_days() -%}
    {%- set match = modules.re.search('_(\\d+)([dw])$', model.name) -%}
    {%- if not match -%}
        {{ exceptions.raise_compiler_error("feature table " ~ model.name ~ ": name has no window like _7d or _2w at its end") }}
    {%- endif -%}
    {{- (match.group(1) | int) * (7 if match.group(2) == 'w' else 1) -}}
{%- endmacro -%}
