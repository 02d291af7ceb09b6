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

from collections.abc import Iterable, Mapping
from typing import Self

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

Steps = Iterable[tuple[str, float | None]]
AnyPanel = (
    stat_b.Panel
    | gauge_b.Panel
    | timeseries_b.Panel
    | statetimeline_b.Panel
    | bargauge_b.Panel
    | table_b.Panel
)


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


def _reduce_last() -> common_b.ReduceDataOptions:
    return common_b.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def _common(
    panel: AnyPanel,
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    *,
    instant: bool,
    unit: str,
    thresholds: dashboard_b.ThresholdsConfig,
    color_mode: model.FieldColorModeId,
    decimals: int | None = None,
    min_: float | None = None,
    max_: float | None = None,
    mappings: Mapping[str, tuple[str, str]] | None = None,
    no_value: str | None = None,
) -> None:
    for ref, tgt in zip(REF_IDS, targets, strict=False):
        tgt.ref_id(ref)
        if instant:
            tgt.instant()
        else:
            tgt.range()
    panel.title(title).description(description).datasource(DS).targets(list(targets))
    panel.unit(unit).thresholds(thresholds).color_scheme(dashboard_b.FieldColor().mode(color_mode))
    panel.mappings(value_map(mappings) if mappings else [])
    if decimals is not None:
        panel.decimals(decimals)
    if min_ is not None:
        panel.min(min_)
    if max_ is not None:
        panel.max(max_)
    if no_value is not None:
        panel.no_value(no_value)


# --------------------------------------------------------------------------- visualizations


def add(dash: dashboard_b.Dashboard, panel: AnyPanel, w: int, h: int) -> None:
    """Place `panel` next on the grid (the SDK packs panels left to right, 24 columns a line)."""
    dash.with_panel(panel.span(w).height(h))


def stat(
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    unit: str,
    thresholds: dashboard_b.ThresholdsConfig,
    *,
    decimals: int | None = None,
    mappings: Mapping[str, tuple[str, str]] | None = None,
    no_value: str | None = None,
    color_mode: common.BigValueColorMode = common.BigValueColorMode.BACKGROUND,
    text_mode: common.BigValueTextMode = common.BigValueTextMode.VALUE_AND_NAME,
) -> stat_b.Panel:
    panel = stat_b.Panel()
    _common(
        panel,
        title,
        description,
        targets,
        instant=True,
        unit=unit,
        thresholds=thresholds,
        color_mode=model.FieldColorModeId.THRESHOLDS,
        decimals=decimals,
        mappings=mappings,
        no_value=no_value,
    )
    return (
        panel.color_mode(color_mode)
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
    *,
    min_: float,
    max_: float,
    decimals: int | None = None,
    no_value: str | None = None,
) -> gauge_b.Panel:
    panel = gauge_b.Panel()
    _common(
        panel,
        title,
        description,
        targets,
        instant=True,
        unit=unit,
        thresholds=thresholds,
        color_mode=model.FieldColorModeId.THRESHOLDS,
        decimals=decimals,
        min_=min_,
        max_=max_,
        no_value=no_value,
    )
    return (
        panel.min_viz_height(75)
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
    decimals: int | None = None,
    min_: float | None = None,
    max_: float | None = None,
    soft_min: float | None = None,
    min_interval: str | None = None,
) -> timeseries_b.Panel:
    panel = timeseries_b.Panel()
    _common(
        panel,
        title,
        description,
        targets,
        instant=False,
        unit=unit,
        thresholds=thresholds,
        color_mode=model.FieldColorModeId.PALETTE_CLASSIC,
        decimals=decimals,
        min_=min_,
        max_=max_,
    )
    panel.axis_border_show(False).axis_centered_zero(False).axis_color_mode(common.AxisColorMode.TEXT)
    panel.axis_label("").axis_placement(common.AxisPlacement.AUTO).bar_alignment(common.BarAlignment.CENTER)
    panel.draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
    panel.fill_opacity(70 if bars else 10).gradient_mode(common.GraphGradientMode.NONE)
    panel.hide_from(common_b.HideSeriesConfig().legend(False).tooltip(False).viz(False))
    panel.insert_nulls(False).line_interpolation(common.LineInterpolation.LINEAR)
    panel.line_width(1 if bars else 2).point_size(4).show_points(common.VisibilityMode.NEVER)
    panel.scale_distribution(common_b.ScaleDistributionConfig().type(common.ScaleDistribution.LINEAR))
    panel.span_nulls(False)
    panel.stacking(
        common_b.StackingConfig()
        .group("A")
        .mode(common.StackingMode.NORMAL if stack else common.StackingMode.NONE)
    )
    panel.thresholds_style(common_b.GraphThresholdsStyleConfig().mode(show_thresholds))
    if soft_min is not None:
        panel.axis_soft_min(soft_min)
    panel.legend(
        common_b.VizLegendOptions()
        .calcs([])
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )
    panel.tooltip(
        common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
    )
    if min_interval is not None:
        panel.interval(min_interval)
    return panel


def state_timeline(
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    mappings: Mapping[str, tuple[str, str]],
    thresholds: dashboard_b.ThresholdsConfig,
) -> statetimeline_b.Panel:
    panel = statetimeline_b.Panel()
    _common(
        panel,
        title,
        description,
        targets,
        instant=False,
        unit="none",
        thresholds=thresholds,
        color_mode=model.FieldColorModeId.THRESHOLDS,
        mappings=mappings,
    )
    return (
        panel.fill_opacity(70)
        .hide_from(common_b.HideSeriesConfig().legend(False).tooltip(False).viz(False))
        .line_width(0)
        .align_value(common.TimelineValueAlignment.LEFT)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(False)
        )
        .merge_values(True)
        .row_height(0.9)
        .show_value(common.VisibilityMode.AUTO)
        .tooltip(
            common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.SINGLE).sort(common.SortOrder.NONE)
        )
    )


def bargauge(
    title: str,
    description: str,
    targets: list[prometheus_b.Dataquery],
    unit: str,
    thresholds: dashboard_b.ThresholdsConfig,
) -> bargauge_b.Panel:
    panel = bargauge_b.Panel()
    _common(
        panel,
        title,
        description,
        targets,
        instant=True,
        unit=unit,
        thresholds=thresholds,
        color_mode=model.FieldColorModeId.THRESHOLDS,
        decimals=0,
        min_=0,
    )
    return (
        panel.display_mode(common.BarGaugeDisplayMode.GRADIENT)
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
    panel = table_b.Panel()
    _common(
        panel,
        title,
        description,
        targets,
        instant=True,
        unit=unit,
        thresholds=thresholds,
        color_mode=model.FieldColorModeId.THRESHOLDS,
        decimals=0,
    )
    return (
        panel.cell_height(common.TableCellHeight.SM)
        .footer(common_b.TableFooterOptions().count_rows(False).reducer(["sum"]).show(True))
        .show_header(True)
        .align(common.FieldTextAlignment.AUTO)
        .cell_options(common.TableColorTextCellOptions())
        .inspect(False)
        .transformations(
            [
                model.DataTransformerConfig(id_val="merge", options={}),
                model.DataTransformerConfig(
                    id_val="organize",
                    options={"excludeByName": {"Time": True}, "renameByName": dict(renames)},
                ),
            ]
        )
    )


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
