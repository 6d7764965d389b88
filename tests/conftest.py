import numba
from hypothesis import settings

import xbarsim.crossbar.jit  # noqa: F401  (chooses the threading layer, before the pool starts below)

numba.get_num_threads()  # start the thread pool: kernels called directly below expect it

# Numba compiles on first use: no per-example deadline.
settings.register_profile("xbarsim", deadline=None, max_examples=40)
settings.load_profile("xbarsim")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def lenet_files(tmp_path_factory):
    """A seeded, untrained LeNet-5 for 8x8 digits in the forms the command line reads: an xbarsim
    checkpoint, a plain state_dict, a pickled whole module, a chip file mapped from it, a chip YAML and a
    sweep spec. Read-only: a test that changes one copies it first."""
    import torch

    from xbarsim.config import ChipConfig
    from xbarsim.mapping.chip import map_model
    from xbarsim.models import zoo
    from xbarsim.models.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("lenet_files")
    torch.manual_seed(0)
    model = zoo.build("lenet5", image_size=8).eval()
    save_checkpoint(model, folder / "lenet5.pt")
    torch.save(model.state_dict(), folder / "state.pt")
    torch.save(model, folder / "whole.pt")
    map_model(model, ChipConfig.preset("pcm").with_values({"tile.rows": 64, "tile.cols": 64}), seed=0).save(folder / "chip.h5")
    (folder / "chip.yaml").write_text("preset: pcm\ntile: {rows: 64, cols: 64}\n")
    (folder / "spec.yaml").write_text(
        f"model: {{checkpoint: '{folder / 'lenet5.pt'}'}}\nchip: '{folder / 'chip.yaml'}'\n"
        "axes: {tile.adc.bits: [6]}\nrepeats: 1\ntest_samples: 20\n"
    )
    return folder


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits, the split every command uses."""
    from xbarsim.models import data

    return data.digits()


@pytest.fixture(scope="session")
def lenet(digits):
    """A LeNet-5 for 8x8 digits trained for 25 epochs from seed 0 (read-only)."""
    import torch

    from xbarsim.models import zoo
    from xbarsim.models.training import TrainConfig, train

    torch.manual_seed(0)
    model = zoo.build("lenet5", image_size=8)
    train(model, digits, TrainConfig(epochs=25), progress=False)
    return model
