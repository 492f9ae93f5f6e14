"""Every figure of the compendium fits its own canvas and is drawn once per save.

The notebooks show figures as they are (no ``bbox_inches="tight"``, see
:func:`esi.report.setup_display`), so a label reaching beyond the canvas would be cut off in
the reports; :func:`esi.plots.laid_out` lays each figure out once and removes its layout engine.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import esi  # noqa: E402
from esi.params import DEFAULTS, SENSITIVITY_DEFAULTS  # noqa: E402
from esi.pipeline import Analysis, notebook_extra  # noqa: E402


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    a = Analysis(dict(DEFAULTS, **SENSITIVITY_DEFAULTS,
                      run_dir=str(tmp_path_factory.mktemp("plots"))),
                 extra=notebook_extra())
    a.ensure_results()
    return a


def _figures(a):
    c, m = a.cohort(), a.match()
    per_patient = a.per_patient_outcomes()
    yield "flow", lambda: esi.plots.flow.flow_diagram(c.flow, c.group_counts())
    yield "love", lambda: esi.plots.matching.love_plot(m)
    yield "overlap", lambda: esi.plots.matching.overlap_plot(m)
    yield "trajectory", lambda: esi.plots.outcomes.trajectory_plot(c.eligible, m)
    yield "forest", lambda: esi.plots.outcomes.forest_plot(a.outcomes())
    bounds = esi.sensitivity.rosenbaum_bounds(m.pairs, per_patient)
    yield "rosenbaum", lambda: esi.plots.sensitivity.rosenbaum_plot(bounds)
    curve = esi.sensitivity.power_curve(n_sim=200)
    yield "power curve", lambda: esi.plots.sensitivity.power_curve_plot(curve)
    influence = esi.sensitivity.leave_one_pair_out(m.pairs, per_patient)
    yield "influence", lambda: esi.plots.sensitivity.influence_plot(influence)
    mv = a.multiverse()
    yield "specification curve", lambda: esi.plots.sensitivity.specification_curve(mv)
    yield "specification curve, positive", lambda: esi.plots.sensitivity.specification_curve(
        mv, outcome="positive")
    audit = esi.audit.run_audit(a.run_dir, registry=c.eligible)
    yield "sprite", lambda: esi.plots.audit.sprite_plot(audit["sprite_distribution"])
    yield "grim", lambda: esi.plots.audit.grim_plot(audit["grim_audit"])
    yield "reproduction", lambda: esi.plots.audit.reproduction_plot(audit["reproduction"])


def test_every_figure_fits_its_canvas_and_keeps_no_layout_engine(analysis):
    checked = []
    for name, make in _figures(analysis):
        fig = make()
        try:
            assert fig.get_layout_engine() is None, name
            renderer = fig.canvas.get_renderer()
            box = fig.get_tightbbox(renderer)  # inches, everything drawn
            width, height = fig.get_size_inches()
            tol = 1 / fig.dpi  # one pixel
            assert box.x0 >= -tol and box.y0 >= -tol, (name, box)
            assert box.x1 <= width + tol and box.y1 <= height + tol, (name, box, width, height)
        finally:
            plt.close(fig)
        checked.append(name)
    assert len(checked) == 13


def test_the_check_catches_a_label_outside_the_canvas():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_ylabel("a label far too long to fit beside so small an axes " * 3)
    fig.subplots_adjust(left=0.01)
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    assert box.x0 < 0 or box.y0 < 0 or box.y1 > 2
    plt.close(fig)
