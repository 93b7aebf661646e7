"""The Segments page's overlap and centroid charts (analytics/charts.py), without a browser.

Automatic segments partition the customers, so their overlap matrix is a bare diagonal of their sizes:
the page draws rule segments against every segment instead, or a sentence when there is no rule
segment. Heatmaps name every row and column (plotly thinned the category ticks: 5 rows, 3 names).
"""

from __future__ import annotations

from analytics import charts

NAMES = ["Loyal", "New", "Lapsed", "Buyers"]
MATRIX = [
    [40, 0, 0, 35],
    [0, 25, 0, 10],
    [0, 0, 30, 2],
    [35, 10, 2, 47],
]


def test_automatic_segments_alone_have_no_overlap_to_draw():
    assert charts.rule_overlap(NAMES[:3], [False, False, False], [row[:3] for row in MATRIX[:3]]) is None


def test_rule_segments_are_drawn_against_every_segment():
    rows, columns, matrix = charts.rule_overlap(NAMES, [False, False, False, True], MATRIX)
    assert rows == ["Buyers"] and columns == NAMES and matrix == [[35, 10, 2, 47]]
    fig = charts.overlap_figure(rows, columns, matrix)
    heat = fig.data[0]
    assert list(heat.y) == ["Buyers"] and list(heat.x) == NAMES
    assert [list(r) for r in heat.text] == [["35", "10", "2", "47"]]


def test_suppressed_cells_stay_visible_as_a_dash():
    rows, columns, matrix = charts.rule_overlap(NAMES[:2], [False, True], [[40, None], [None, 12]])
    fig = charts.overlap_figure(rows, columns, matrix)
    assert [list(r) for r in fig.data[0].text] == [["–", "12"]]


def test_heatmaps_label_every_category():
    for fig in (
        charts.centroid_heatmap_figure(["A", "B", "C", "D", "E"], ["recency", "frequency"], [[0.1, 0.2]] * 5),
        charts.overlap_figure(["B"], ["A", "B"], [[1, 2]]),
    ):
        for axis in (fig.layout.xaxis, fig.layout.yaxis):
            assert axis.type == "category" and axis.dtick == 1
