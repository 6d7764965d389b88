"""Sweep figures: log axes for log-spaced values, the heat map and its colour bar in percent."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from xbarsim.models import data, zoo
from xbarsim.models.checkpoint import save_checkpoint
from xbarsim.models.training import TrainConfig, train
from xbarsim.sweeps.plots import log_spaced, plot_sweep
from xbarsim.sweeps.runner import run_sweep
from xbarsim.sweeps.spec import SweepSpec
from xbarsim.sweeps.store import read_results


@pytest.mark.parametrize("values, expected", [
    ([0.5, 1, 2, 4, 8], True),  # doubling
    ([1, 3600, 86400, 2592000, 31557600, 315576000], True),  # drift times, 1 s to 10 years
    (list(np.logspace(-2, 1, 13)), True),
    ([4, 6, 8], False),  # bits: even steps
    ([1, 2, 3, 4, 5, 6, 7, 8], False),
    ([0, 1, 3], False),  # a zero has no logarithm
    ([1, 2], False),  # too few to tell
    ([1.0, 1.5, 2.25, 3.375], False),  # geometric but spanning less than a factor 4
    (["a", "b", "c"], False),
])  # fmt: skip
def test_log_spacing_is_recognized(values, expected):
    assert log_spaced(values) is expected


def test_sweep_figures_use_log_axes_and_percent(tmp_path, monkeypatch):
    model = zoo.build("mlp", hidden=(32,))
    train(model, data.digits(), TrainConfig(epochs=3), progress=False)
    save_checkpoint(model, tmp_path / "mlp.pt")
    spec = SweepSpec.model_validate({"name": "plots", "model": {"checkpoint": str(tmp_path / "mlp.pt")}, "chip": "pcm",
                                     "test_samples": 60, "axes": {"device.read_noise.scale": [0.5, 1, 2, 4],
                                     "tile.adc.bits": [4, 8]}, "repeats": 1})  # fmt: skip
    run_sweep(spec, tmp_path / "s.h5", "serial", progress=False)
    results = read_results(tmp_path / "s.h5")
    figures = []
    real_savefig = Figure.savefig

    def keep(figure, *args, **kwargs):
        figures.append(figure)
        return real_savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    written = plot_sweep(results, tmp_path / "s.png")
    assert [p.name for p in written] == ["s.png", "s_heatmap.png"] and all(p.is_file() for p in written)
    lines, heat = figures
    assert lines.axes[0].get_xscale() == "log"  # 0.5, 1, 2, 4: doublings
    image = heat.axes[0].images[0]
    cells = np.asarray(image.get_array())
    accuracies = np.asarray(results.columns["accuracy"])
    assert image.get_clim() == (0, 100) and cells.max() > 1  # percent, like the numbers written in the cells
    assert np.isclose(cells.max(), 100 * accuracies.max()) and np.isclose(cells.min(), 100 * accuracies.min())
    texts = [float(t.get_text()) for t in heat.axes[0].texts]
    assert np.allclose(sorted(texts), np.sort(np.round(cells.ravel(), 1)))
    assert "%" in heat.axes[1].get_ylabel()  # the colour bar says its unit
    _assert_labels_apart(lines)
    plotted = [container.lines[0] for container in lines.axes[0].containers]  # the data line of each errorbar
    xs = [np.asarray(line.get_xdata()) for line in plotted]
    assert len(xs) == 2 and not np.isclose(xs[0], xs[1]).any()  # dodged: neither line hides the other
    assert np.allclose(xs[0], [0.5, 1, 2, 4], rtol=0.05) and np.allclose(xs[1], [0.5, 1, 2, 4], rtol=0.05)
    assert plotted[0].get_marker() != plotted[1].get_marker()


def _assert_labels_apart(figure) -> None:
    """Every visible text of the figure lies inside it, and no two tick labels of the x axis overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()  # the figure was saved and closed: draw it again
    figure.draw(renderer)
    box = figure.bbox
    ax = figure.axes[0]
    low, high = ax.get_xlim()
    ticks = [label for minor in (False, True) for x, label in zip(ax.get_xticks(minor=minor), ax.get_xticklabels(minor=minor))
             if low <= x <= high and label.get_visible() and label.get_text()]  # fmt: skip
    for text in [ax.title, *ticks]:
        extent = text.get_window_extent(renderer)
        assert box.x0 - 0.5 <= extent.x0 and extent.x1 <= box.x1 + 0.5, f"{text.get_text()!r} runs off the figure"
    labels = sorted((label.get_window_extent(renderer) for label in ticks), key=lambda extent: extent.x0)
    assert all(a.x1 <= b.x0 for a, b in zip(labels, labels[1:])), "x tick labels overlap"


@pytest.mark.parametrize("kind", ["weight", "bayesft", "chip:pcm"])
def test_noise_figures_fit_their_titles_and_name_their_level(kind, tmp_path, monkeypatch):
    from xbarsim.sweeps.metrics import NoiseCurve, logistic
    from xbarsim.sweeps.noise_kinds import parse_noise_kind
    from xbarsim.sweeps.plots import plot_noise_curves

    noise = parse_noise_kind(kind)
    sigmas = np.logspace(-2, 1, 9)
    rng = np.random.default_rng(0)
    accuracies = logistic(np.log10(sigmas), 0.85, 4.0, -0.5, 0.1)[:, None] + rng.normal(0, 0.01, (9, 3))
    figures = []
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda figure, *a, **k: (figures.append(figure), real_savefig(figure, *a, **k))[1])
    title = f"digits: {noise.describe()}, vs {noise.level_name}"  # as `xbarsim robustness` titles it
    plot_noise_curves({"lenet5_noisy": NoiseCurve(sigmas, accuracies)}, tmp_path / "r.png", title, noise.level_name)
    (figure,) = figures
    _assert_labels_apart(figure)
    legend = figure.axes[0].get_legend().get_texts()[0].get_text()
    symbol = {"sigma": r"\sigma", "eta": r"\eta"}.get(noise.level_name, rf"\mathrm{{{noise.level_name}}}")
    assert f"${symbol}_{{mid}}$ = " in legend, legend
