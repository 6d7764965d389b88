"""A whole network gives the same bits whatever the thread count of each runtime (docs/determinism.md)."""

import os
import subprocess
import sys
import textwrap

import pytest

# ResNet-18 on the pcm preset after a day of drift: its 3x3x256 convolutions (2304 inputs) are row
# blocks of 461, padded for BLAS (read/blas.py); batch 4 (GEMMs) and batch 1 (matrix-vector
# products); the forward with its threads held at one (a busy machine) and left as they are. Then a
# 2 x 256 LSTM at batch 32, whose time steps run on BLAS's own threads in a pooled forward
# (serial.steps_section: "all", and "auto" on a quiet machine).
SCRIPT = textwrap.dedent("""
    import hashlib, sys
    import torch
    from xbarsim import ChipConfig, map_model
    from xbarsim.mapping import serial
    from xbarsim.models import zoo

    torch.manual_seed(0)
    net = zoo.build("resnet18", in_channels=3, num_classes=10).eval()
    chip = map_model(net, ChipConfig.preset("pcm"), seed=3, progress=False)
    chip.drift(86400.0)
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    digest = hashlib.sha256()
    with torch.no_grad():
        for mode in ("all", "auto", "one"):
            serial.NETWORK_THREADS = mode
            digest.update(chip(x[:4]).numpy().tobytes())
            digest.update(chip(x[4:]).numpy().tobytes())
    lstm = zoo.build("lstm", input_size=16, hidden_size=256, num_layers=2, num_classes=10).eval()
    sequences = torch.rand(32, 12, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for mode in ("all", "auto", "one"):
            serial.NETWORK_THREADS = mode
            chip = map_model(lstm, ChipConfig.preset("pcm"), seed=4, progress=False)  # the same read noise each time
            digest.update(chip(sequences).numpy().tobytes())
    print(digest.hexdigest(), torch.get_num_threads())
""")


def _run(threads: int) -> list[str]:
    count = str(threads)
    env = {**os.environ, "NUMBA_NUM_THREADS": count, "OPENBLAS_NUM_THREADS": count, "OMP_NUM_THREADS": count, "MKL_NUM_THREADS": count}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.slow
def test_resnet18_after_drift_gives_the_same_bits_on_one_and_two_threads_of_every_runtime():
    one, two = _run(1), _run(2)
    assert one[1] == "1" and two[1] == "2"  # torch's threads as asked
    assert one[0] == two[0]


# a digital layer's GEMM (Intel MKL in torch) of 1000 inputs: without MKL's strict mode its bits
# change with torch's thread count (K from about 770 on, at batch 1 from about 260)
DIGITAL = textwrap.dedent("""
    import hashlib, sys
    import torch
    from torch import nn
    from xbarsim import ChipConfig, map_model
    from xbarsim.mapping import serial

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 1000), nn.ReLU(), nn.Linear(1000, 300), nn.ReLU(), nn.Linear(300, 10))
    chip = map_model(net, ChipConfig.preset("pcm"), seed=3, layers=["0"], progress=False)  # 2 and 4 stay digital
    x = torch.rand(9, 64, generator=torch.Generator().manual_seed(1))
    digests = []
    with torch.no_grad():
        for mode in ("all", "auto", "one"):
            serial.NETWORK_THREADS = mode
            chip.program(3)  # the same read noise for both
            digests.append(hashlib.sha256(chip(x[:8]).numpy().tobytes() + chip(x[8:]).numpy().tobytes()).hexdigest())
    print(*digests, torch.get_num_threads(), serial.torch_gemms_ignore_threads())
""")


@pytest.mark.parametrize("mkl_cbwr", [None, "AUTO"])
def test_digital_layers_give_the_same_bits_whatever_the_threads_the_forward_holds(mkl_cbwr):
    """With MKL's strict mode (xbarsim asks for it) torch's threads may be held and changed; with
    another mode (the user's MKL_CBWR) the forward holds only BLAS's, and the bits stay the same."""
    outputs = []
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        env.pop("MKL_CBWR", None)
        if mkl_cbwr:
            env["MKL_CBWR"] = mkl_cbwr
        done = subprocess.run([sys.executable, "-c", DIGITAL], env=env, capture_output=True, text=True, check=True)
        outputs.append(done.stdout.split())
    assert [out[4] for out in outputs] == (["True", "True"] if mkl_cbwr is None else ["False", "False"])
    assert all(out[0] == out[1] == out[2] for out in outputs)  # holding threads (quiet or busy machine) changes nothing
    if mkl_cbwr is None:  # strict: not even torch's own thread count
        assert outputs[0][0] == outputs[1][0]
