import h5py
import numpy as np
import pytest
import torch
from torch import nn

from xbarsim import ChipConfig, load_chip, map_model
from xbarsim.mapping import chipfile
from xbarsim.mapping.chipfile import ChipFileError
from xbarsim.models import zoo


@pytest.fixture
def saved_chip(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("lenet5", image_size=8)
    chip = map_model(model, ChipConfig.preset("pcm").with_values({"tile.rows": 64, "tile.cols": 48}), seed=7)
    chip.drift(86400.0)
    with torch.no_grad():
        chip(torch.rand(5, 1, 8, 8))  # advance the read counters
    path = tmp_path / "chip.h5"
    chip.save(path)
    return model, chip, path


def test_save_load_continues_bit_identically(saved_chip):
    _, chip, path = saved_chip
    loaded = load_chip(path)
    x = torch.rand(9, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), chip(x))
        assert torch.equal(loaded(x), chip(x))  # and keeps following the same noise
    assert loaded.chip.t_s == 86400.0 and loaded.chip.seed == 7
    assert loaded.chip.cfg == chip.chip.cfg
    for a, b in zip(loaded.chip.matrices(), chip.chip.matrices()):
        assert np.array_equal(a.tiles.g_now, b.tiles.g_now) and a.tiles.reads == b.tiles.reads


def test_load_with_an_explicit_model_and_with_a_class(saved_chip):
    model, chip, path = saved_chip
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        expected = chip(x)
        assert torch.equal(load_chip(path, zoo.build("lenet5", image_size=8))(x), expected)
        assert torch.equal(load_chip(path, zoo.LeNet5, image_size=8)(x), expected)


def test_a_plain_sequential_round_trips_without_the_model(tmp_path):
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2)).eval()
    chip = map_model(model, ChipConfig.preset("rram"), layers=["3"])  # the first Linear (BN folded in) stays digital
    path = tmp_path / "seq.h5"
    chip.save(path)
    x = torch.randn(4, 6)
    fresh = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    with torch.no_grad():
        expected = chip(x)
        assert torch.equal(load_chip(path)(x), expected)
        assert torch.equal(load_chip(path, fresh)(x), expected)


def test_the_digital_tensors_become_the_networks_own_in_its_dtypes(tmp_path):
    """Without a model the network is built on the meta device and takes the file's tensors (no meta tensor
    is left, nothing imports sympy as Module.to_empty does), cast to the dtypes the network declares."""
    import subprocess
    import sys

    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.BatchNorm1d(5), nn.Linear(5, 2)).eval()  # the BN does not fold
    with torch.no_grad():
        model[2].running_mean.copy_(torch.arange(5.0))
    chip = map_model(model, ChipConfig.preset("rram"), layers=["3"])
    path = tmp_path / "seq.h5"
    chip.save(path)
    with h5py.File(path, "a") as f:  # a file may hold float64 digital tensors: the network's float32 wins
        value = f["digital/0.weight"][()].astype(np.float64)
        del f["digital/0.weight"]
        f["digital"].create_dataset("0.weight", data=value)
    loaded = load_chip(path)
    tensors = dict(loaded.network.state_dict())
    assert all(not t.is_meta for t in tensors.values()) and all(not t.is_meta for t in loaded.network.buffers())
    assert tensors["0.weight"].dtype == torch.float32 and torch.equal(tensors["0.weight"], model[0].weight)
    assert torch.equal(tensors["2.running_mean"], torch.arange(5.0)) and tensors["2.num_batches_tracked"].dtype == torch.int64
    assert all(p.requires_grad for p in loaded.network.parameters())
    x = torch.randn(4, 6)
    with torch.no_grad():
        assert torch.equal(loaded(x), chip(x))
    script = (f"import sys, torch, xbarsim; xbarsim.load_chip({str(path)!r}, progress=False); "
              f"print('sympy' in sys.modules)")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_arrays_are_stored_checksummed_in_one_chunk_and_older_chunkings_still_load(saved_chip):
    _, chip, path = saved_chip
    with h5py.File(path, "a") as f:
        matrix = f["layers"][next(iter(f["layers"]))]["m0"]
        targets = matrix["targets"]
        assert targets.fletcher32 and targets.chunks == targets.shape and targets.compression is None
        value = targets[()]
        del matrix["targets"]  # as earlier versions wrote it: h5py's automatic (smaller) chunks
        matrix.create_dataset("targets", data=value, chunks=(7, 5), fletcher32=True)
    loaded = load_chip(path)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), chip(x))


def test_non_chip_files_are_refused_by_name(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"definitely not hdf5" * 100)
    with pytest.raises(ChipFileError, match=r"junk.h5: not a readable HDF5 file"):
        load_chip(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ChipFileError, match=r"other.h5: not an xbarsim chip file"):
        load_chip(other)
    with pytest.raises(FileNotFoundError, match="chip file .*missing.h5: no such file"):
        load_chip(tmp_path / "missing.h5")


def test_other_format_versions_are_refused(saved_chip):
    _, _, path = saved_chip
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(ChipFileError, match=r"chip.h5: chip file format version 99; this xbarsim .* reads version 2 only"):
        load_chip(path)


def test_truncated_files_are_refused(saved_chip, tmp_path):
    _, _, path = saved_chip
    raw = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ChipFileError, match="cut.h5"):
        load_chip(cut)


def test_corrupted_data_is_detected_by_checksums(saved_chip):
    _, _, path = saved_chip
    with h5py.File(path, "r") as f:
        offset = f["layers/classifier.1/m0/targets"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ChipFileError, match=r"chip.h5: layer 'classifier.1', dataset m0/targets: damaged or incomplete chip file"):
        load_chip(path)


def test_a_failed_save_leaves_the_old_file_untouched(saved_chip, monkeypatch):
    _, chip, path = saved_chip
    before = path.read_bytes()

    def explode(f, record, *_):
        f.attrs["format"] = "half-written"
        raise RuntimeError("disk full")

    monkeypatch.setattr(chipfile, "_write", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        chip.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["chip.h5"]  # no temporary file left


def test_recurrent_and_grouped_layers_round_trip(tmp_path):
    torch.manual_seed(1)
    model = zoo.build("gru", input_size=8, hidden_size=16, bidirectional=True)
    chip = map_model(model, ChipConfig.preset("rram").with_values({"mapping.bias": "rows"}), seed=2)
    path = tmp_path / "gru.h5"
    chip.save(path)
    x = torch.rand(3, 8, 8)
    with torch.no_grad():
        assert torch.equal(load_chip(path)(x), chip(x))
