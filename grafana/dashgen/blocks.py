"""Building blocks of the restartguard dashboard, on Grafana's own SDK (grafana-foundation-sdk).

One function per visualization (stat, gauge, time series, state timeline, bar gauge, table) sets
the options every panel of that kind shares here, so the rows (``overview.py``, ``detail.py``,
``pipeline.py``) only say what differs: title, description, queries, unit, thresholds.

The SDK release is pinned in pyproject.toml (its schema is Grafana 10.4's). Two things Grafana
reads that its 10.4 schema has no field for are added by small subclasses at the end of this file:
the Prometheus annotation options (``step``, ``titleFormat`` ...) and a query variable's
``definition``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self, TypedDict, TypeVar, Unpack

from grafana_foundation_sdk.builders import bargauge as bargauge_b
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.builders import gauge as gauge_b
from grafana_foundation_sdk.builders import prometheus as prometheus_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import statetimeline as statetimeline_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as timeseries_b
from grafana_foundation_sdk.models import common, prometheus
from grafana_foundation_sdk.models import dashboard as model

#: Every query goes to the Prometheus data source chosen with the `datasource` variable.
DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Every exporter series (and recording rule over them) carries `service`; receiver series do not.
SVC = 'service=~"$service"'
REF_IDS = "ABCDEFGHIJ"

AnyPanel = (
    stat_b.Panel
    | gauge_b.Panel
    | timeseries_b.Panel
    | statetimeline_b.Panel
    | bargauge_b.Panel
    | table_b.Panel
)
P = TypeVar("P", bound=AnyPanel)


# --------------------------------------------------------------------------- queries and values


def target(expr: str, legend: str = "") -> prometheus_b.Dataquery:
    """A PromQL query in code mode; the panel function decides range or instant and the refId."""
    return (
        prometheus_b.Dataquery()
        .datasource(DS)
        .editor_mode(prometheus.QueryEditorMode.CODE)
        .expr(expr)
        .format(prometheus.PromQueryFormat.TIME_SERIES)
        .legend_format(legend or "__auto")
    )


def by_service(aggregation: str, series: str, legend: str = "{{service}}") -> prometheus_b.Dataquery:
    """`series` of the chosen `$service`(s), aggregated per service, e.g. ``max by (service) (trader_up{…})``."""
    return target(f"{aggregation} by (service) ({series}{{{SVC}}})", legend)


def zero_if_absent(expr: str, **labels: str) -> str:
    """`expr`, or a single 0 series (carrying `labels`) when `expr` has no series at all.

    Receiver counters only appear after their first event; an explicit 0 reads better in the
    morning than "No data" (which could also mean "broken"). `or on()` adds the fallback only
    when the left side is empty.
    """
    fallback = "vector(0)"
    for name, value in labels.items():
        fallback = f'label_replace({fallback}, "{name}", "{value}", "", "")'
    return f"({expr}) or on() {fallback}"


def steps(*pairs: tuple[str, float | None]) -> dashboard_b.ThresholdsConfig:
    """Absolute thresholds: the first pair's value is None (the base colour)."""
    return (
        dashboard_b.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(color=c, value=v) for c, v in pairs])
    )


def value_map(mapping: Mapping[str, tuple[str, str]]) -> list[model.ValueMapping]:
    """Value → (text, colour), e.g. ``{"0": ("DOWN", "red")}``."""
    options = {
        key: model.ValueMappingResult(text=text, color=color, index=i)
        for i, (key, (text, color)) in enumerate(mapping.items())
    }
    return [model.ValueMap(options=options)]


#: Stat text/colour modes the rows use besides the defaults.
VALUE = common.BigValueTextMode.VALUE
COLOR_VALUE = common.BigValueColorMode.VALUE

UP_DOWN = {"0": ("DOWN", "red"), "1": ("UP", "green")}
MET_MISSED = {"0": ("missed", "red"), "1": ("met", "green")}


def fixed_color(color: str) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="color", value={"fixedColor": color, "mode": "fixed"})


def no_fill() -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="custom.fillOpacity", value=0)


def dashed_line() -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="custom.lineStyle", value={"dash": [10, 10], "fill": "dash"})


def colors_by_name(panel: timeseries_b.Panel, colors: Mapping[str, str]) -> None:
    """Fixed colours for series by display name (e.g. one per restart cause)."""
    for name, color in colors.items():
        panel.override_by_name(name, [fixed_color(color)])


class Field(TypedDict, total=False):
    """Field options a panel may set besides unit and thresholds."""

    decimals: int
    min_: float
    max_: float
    mappings: Mapping[str, tuple[str, str]]
    no_value: str


def _base(
    panel: P,
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    *,
    unit: str,
    thresholds: dashboard_b.ThresholdsConfig,
    instant: bool,
    color_mode: model.FieldColorModeId = model.FieldColorModeId.THRESHOLDS,
    **field: Unpack[Field],
) -> P:
    """What every panel sets: text, queries (refIds A, B, …; instant or range), unit, thresholds."""
    for ref, tgt in zip(REF_IDS, targets, strict=False):
        tgt.ref_id(ref)
        if instant:
            tgt.instant()
        else:
            tgt.range()
    panel.title(title).description(description).datasource(DS).targets(list(targets))
    panel.unit(unit).thresholds(thresholds).color_scheme(dashboard_b.FieldColor().mode(color_mode))
    panel.mappings(value_map(field["mappings"]) if "mappings" in field else [])
    if "decimals" in field:
        panel.decimals(field["decimals"])
    if "min_" in field:
        panel.min(field["min_"])
    if "max_" in field:
        panel.max(field["max_"])
    if "no_value" in field:
        panel.no_value(field["no_value"])
    return panel


# --------------------------------------------------------------------------- visualizations


def add(dash: dashboard_b.Dashboard, panel: AnyPanel, w: int, h: int) -> None:
    """Place `panel` next on the grid (the SDK packs panels left to right, 24 columns a line)."""
    dash.with_panel(panel.span(w).height(h))


def add_line(dash: dashboard_b.Dashboard, h: int, *panels: tuple[int, AnyPanel]) -> None:
    """Place (width, panel) pairs next on the grid, left to right, all `h` high."""
    for w, panel in panels:
        add(dash, panel, w, h)


def stat(
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    unit: str,
    thresholds: dashboard_b.ThresholdsConfig,
    *,
    color_mode: common.BigValueColorMode = common.BigValueColorMode.BACKGROUND,
    text_mode: common.BigValueTextMode = common.BigValueTextMode.VALUE_AND_NAME,
    **field: Unpack[Field],
) -> stat_b.Panel:
    return (
        _base(
            stat_b.Panel(),
            title,
            description,
            targets,
            unit=unit,
            thresholds=thresholds,
            instant=True,
            **field,
        )
        .color_mode(color_mode)
        .graph_mode(common.BigValueGraphMode.NONE)
        .justify_mode(common.BigValueJustifyMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
        .reduce_options(_reduce_last())
        .show_percent_change(False)
        .text_mode(text_mode)
        .wide_layout(True)
    )


def gauge(
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    unit: str,
    thresholds: dashboard_b.ThresholdsConfig,
    **field: Unpack[Field],
) -> gauge_b.Panel:
    return (
        _base(
            gauge_b.Panel(),
            title,
            description,
            targets,
            unit=unit,
            thresholds=thresholds,
            instant=True,
            **field,
        )
        .min_viz_height(75)
        .min_viz_width(75)
        .orientation(common.VizOrientation.AUTO)
        .reduce_options(_reduce_last())
        .show_threshold_labels(False)
        .show_threshold_markers(True)
        .sizing(common.BarGaugeSizing.AUTO)
    )


def timeseries(
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    unit: str,
    thresholds: dashboard_b.ThresholdsConfig,
    *,
    show_thresholds: common.GraphThresholdsStyleMode = common.GraphThresholdsStyleMode.OFF,
    bars: bool = False,
    stack: bool = False,
    soft_min: float | None = None,
    min_interval: str | None = None,
    **field: Unpack[Field],
) -> timeseries_b.Panel:
    panel = _base(
        timeseries_b.Panel(),
        title,
        description,
        targets,
        unit=unit,
        thresholds=thresholds,
        instant=False,
        color_mode=model.FieldColorModeId.PALETTE_CLASSIC,
        **field,
    )
    panel.axis_border_show(False).axis_centered_zero(False).axis_color_mode(common.AxisColorMode.TEXT)
    panel.axis_label("").axis_placement(common.AxisPlacement.AUTO).bar_alignment(common.BarAlignment.CENTER)
    panel.draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
    panel.fill_opacity(70 if bars else 10).gradient_mode(common.GraphGradientMode.NONE)
    panel.hide_from(_shown())
    panel.insert_nulls(False).line_interpolation(common.LineInterpolation.LINEAR)
    panel.line_width(1 if bars else 2).point_size(4).show_points(common.VisibilityMode.NEVER)
    panel.scale_distribution(common_b.ScaleDistributionConfig().type(common.ScaleDistribution.LINEAR))
    panel.span_nulls(False)
    stacking = common.StackingMode.NORMAL if stack else common.StackingMode.NONE
    panel.stacking(common_b.StackingConfig().group("A").mode(stacking))
    panel.thresholds_style(common_b.GraphThresholdsStyleConfig().mode(show_thresholds))
    if soft_min is not None:
        panel.axis_soft_min(soft_min)
    panel.legend(_legend(show=True).calcs([]))
    panel.tooltip(_tooltip(common.TooltipDisplayMode.MULTI, common.SortOrder.DESCENDING))
    if min_interval is not None:
        panel.interval(min_interval)
    return panel


def stacked_counts(
    title: str,
    description: str,
    label: str,
    counter: str,
    thresholds: dashboard_b.ThresholdsConfig,
) -> timeseries_b.Panel:
    """Events per interval of `counter` (a selector), stacked bars by `label`; a 0 bar while it has no series."""
    expr = f"sum by ({label}) (increase({counter}[$__rate_interval]))"
    return timeseries(
        title,
        description,
        [target(zero_if_absent(expr, **{label: "none"}), f"{{{{{label}}}}}")],
        "short",
        thresholds,
        bars=True,
        stack=True,
        min_=0,
    )


def state_timeline(
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    mappings: Mapping[str, tuple[str, str]],
    thresholds: dashboard_b.ThresholdsConfig,
) -> statetimeline_b.Panel:
    panel = statetimeline_b.Panel()
    return (
        _base(
            panel,
            title,
            description,
            targets,
            unit="none",
            thresholds=thresholds,
            instant=False,
            mappings=mappings,
        )
        .fill_opacity(70)
        .hide_from(_shown())
        .line_width(0)
        .align_value(common.TimelineValueAlignment.LEFT)
        .legend(_legend(show=False))
        .merge_values(True)
        .row_height(0.9)
        .show_value(common.VisibilityMode.AUTO)
        .tooltip(_tooltip(common.TooltipDisplayMode.SINGLE, common.SortOrder.NONE))
    )


def bargauge(
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    unit: str,
    thresholds: dashboard_b.ThresholdsConfig,
) -> bargauge_b.Panel:
    panel = bargauge_b.Panel()
    return (
        _base(
            panel,
            title,
            description,
            targets,
            unit=unit,
            thresholds=thresholds,
            instant=True,
            decimals=0,
            min_=0,
        )
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .max_viz_height(300)
        .min_viz_height(16)
        .min_viz_width(8)
        .name_placement(common.BarGaugeNamePlacement.AUTO)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(_reduce_last())
        .show_unfilled(True)
        .sizing(common.BarGaugeSizing.AUTO)
        .value_mode(common.BarGaugeValueMode.COLOR)
    )


def table(
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    unit: str,
    thresholds: dashboard_b.ThresholdsConfig,
    *,
    renames: Mapping[str, str],
) -> table_b.Panel:
    """Instant queries in table format, merged into one table (one column per query)."""
    for tgt in targets:
        tgt.format(prometheus.PromQueryFormat.TABLE)
    organize = {"excludeByName": {"Time": True}, "renameByName": dict(renames)}
    return (
        _base(
            table_b.Panel(),
            title,
            description,
            targets,
            unit=unit,
            thresholds=thresholds,
            instant=True,
            decimals=0,
        )
        .cell_height(common.TableCellHeight.SM)
        .footer(common_b.TableFooterOptions().count_rows(False).reducer(["sum"]).show(True))
        .show_header(True)
        .align(common.FieldTextAlignment.AUTO)
        .cell_options(common.TableColorTextCellOptions())
        .inspect(False)
        .transformations(
            [
                model.DataTransformerConfig(id_val="merge", options={}),
                model.DataTransformerConfig(id_val="organize", options=organize),
            ]
        )
    )


def _reduce_last() -> common_b.ReduceDataOptions:
    return common_b.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def _shown() -> common_b.HideSeriesConfig:
    return common_b.HideSeriesConfig().legend(False).tooltip(False).viz(False)


def _legend(*, show: bool) -> common_b.VizLegendOptions:
    return (
        common_b.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(show)
    )


def _tooltip(mode: common.TooltipDisplayMode, sort: common.SortOrder) -> common_b.VizTooltipOptions:
    return common_b.VizTooltipOptions().mode(mode).sort(sort)


# --------------------------------------------------------------------------- what the 10.4 schema lacks


class PrometheusAnnotation(model.AnnotationQuery):
    """An annotation query of the Prometheus data source.

    The SDK's AnnotationQuery carries only the generic fields; Grafana's Prometheus data source
    also reads ``step``, ``titleFormat``, ``textFormat``, ``tagKeys`` and ``useValueForTime``.
    """

    def __init__(self) -> None:
        super().__init__(built_in=None)  # not Grafana's built-in annotation (the SDK writes 0)
        self.prometheus_options: dict[str, object] = {}

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), **self.prometheus_options}


class PrometheusAnnotationBuilder(dashboard_b.AnnotationQuery):
    """The SDK's annotation builder, plus the Prometheus data source's own options."""

    _internal: PrometheusAnnotation

    def __init__(self) -> None:
        self._internal = PrometheusAnnotation()

    def prometheus(
        self,
        *,
        step: str,
        title_format: str,
        text_format: str,
        tag_keys: str,
        use_value_for_time: bool = False,
    ) -> Self:
        self._internal.prometheus_options = {
            "step": step,
            "titleFormat": title_format,
            "textFormat": text_format,
            "tagKeys": tag_keys,
            "useValueForTime": use_value_for_time,
        }
        return self


class DefinedVariable(model.VariableModel):
    """A variable with ``definition``: the query text Grafana's variable list shows."""

    def __init__(self) -> None:
        super().__init__()
        self.definition: str | None = None

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        if self.definition is not None:
            payload["definition"] = self.definition
        return payload


class QueryVariable(dashboard_b.QueryVariable):
    """The SDK's query-variable builder, plus ``definition``."""

    _internal: DefinedVariable

    def __init__(self, name: str) -> None:
        self._internal = DefinedVariable()
        self._internal.name = name
        self._internal.type_val = model.VariableType.QUERY

    def definition(self, definition: str) -> Self:
        self._internal.definition = definition
        return self
