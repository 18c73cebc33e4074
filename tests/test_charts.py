"""The Compare page's figures read as they should (issue 22): the |w| histograms' runs in
colours of their own, published results that do not exaggerate small differences, and
first-layer tiles large enough to compare without zooming."""

from explorer import charts, state
from kmnist_core.reference import PUBLISHED
from kmnist_core.store import RunStore
from kmnist_core.weights import HIST_EDGES

from app_support import trained_home  # noqa: F401


def test_weight_histograms_are_opaque_bars_side_by_side_with_the_legend_clear_of_the_axis_title():
    bins = len(HIST_EDGES) + 1
    figure = charts.weight_histogram_figure([("#1 overfit", {"histogram": [5] * bins}),
                                             ("#2 l1l2", {"histogram": [9] * bins})])
    assert figure.layout.barmode == "group"  # overlaid, translucent bars blended into one colour
    assert all(trace.opacity in (None, 1) for trace in figure.data)
    assert len({trace.marker.color for trace in figure.data}) == 2
    assert figure.layout.legend.y >= 1 and figure.layout.legend.yanchor == "bottom"  # above the plot, not on "|w|"


def test_published_results_are_dots_so_a_cut_axis_does_not_stretch_bars():
    figure = charts.published_figure([("#1 overfit", 0.89, "kmnist-mini, 2,000 images")], PUBLISHED)
    assert figure.data and all(trace.type == "scatter" and "markers" in trace.mode for trace in figure.data)
    low, high = figure.layout.xaxis.range
    assert low <= 0.89 - 0.03 and high >= max(p.accuracy for p in PUBLISHED)


def test_first_layer_tiles_are_four_a_row(trained_home):
    store = RunStore(trained_home)
    run = next(run for run in store.list_runs() if run.config["family"] == "dense")
    picture, kind, count = state.first_layer_picture(store, run.id)
    tile, gap = 28 * 3, 2  # a unit's 28×28 weights, each pixel drawn 3×3
    assert kind == "dense" and count == min(8, run.config["hidden_units"][0])
    assert picture.shape[1] <= 4 * tile + 3 * gap  # 16 in rows of 8 were too small to see without zooming
