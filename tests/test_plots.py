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
