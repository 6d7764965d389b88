"""IBM aihwkit 1.1.0's inference speed on the workloads of ``xbarsim bench``, for the comparison table of
the README's Benchmarks section (run by ``benchmarks/bench_all.py``, in aihwkit's own venv: see
``benchmarks/fidelity_venv.sh``; aihwkit is never a dependency of xbarsim).

aihwkit's side is ``InferenceRPUConfig()`` with ``PCMLikeNoiseModel(g_max=25)`` and
``GlobalDriftCompensation`` (the defaults xbarsim's ``aihwkit`` preset copies), programmed and drifted to
t = 0, torch's default threads, torch imported first. Timed: one 512 x 512 ``AnalogLinear`` at batch 256
(W ~ N(0, 1), x ~ U(-1, 1), as ``bench tile``'s aihwkit case) and the CNNs of ``bench model`` converted
with ``convert_to_analog`` (every Conv2d and Linear analog, as ``map_model`` maps them) at batch 64.
aihwkit 1.1 does not convert ``nn.LSTM``, so the LSTM is not compared. Where aihwkit's compiled tiles do not
load (built for another torch than the venv's), its pure-torch tiles stand in and the JSON says so.

Usage: /work/venv-aihwkit/bin/python benchmarks/aihwkit_speed.py [--seconds S] [-o FILE]
(with this checkout on PYTHONPATH, for the networks' definitions).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch  # first, as a user's script

from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel
from aihwkit.nn import AnalogLinear
from aihwkit.nn.conversion import convert_to_analog

from aihwkit.simulator.configs import InferenceRPUConfig, TorchInferenceRPUConfig


def _compiled_tiles_work() -> bool:
    """aihwkit's compiled tiles (bound management per input vector) load only with the torch they were
    built against; with another, setting weights fails and the pure-torch tiles stand in."""
    try:
        AnalogLinear(4, 4, bias=False, rpu_config=InferenceRPUConfig()).set_weights(torch.zeros(4, 4))
        return True
    except (ImportError, RuntimeError):
        return False


RPUConfig = InferenceRPUConfig if _compiled_tiles_work() else TorchInferenceRPUConfig

from xbarsim.bench.timing import steady_seconds
from xbarsim.bench.workloads import MODELS, model_input
from xbarsim.models import zoo


def rpu_config():
    cfg = RPUConfig()
    cfg.noise_model = PCMLikeNoiseModel(g_max=25.0)
    cfg.drift_compensation = GlobalDriftCompensation()
    return cfg


def programmed(module: torch.nn.Module) -> torch.nn.Module:
    module.eval()
    module.program_analog_weights()
    module.drift_analog_weights(0.0)
    return module


def tile_seconds(seconds: float) -> float:
    rng = np.random.default_rng(0)
    layer = AnalogLinear(512, 512, bias=False, rpu_config=rpu_config())
    layer.set_weights(torch.from_numpy(rng.standard_normal((512, 512)).astype(np.float32)))
    x = torch.from_numpy(rng.uniform(-1, 1, (256, 512)).astype(np.float32))
    programmed(layer)
    with torch.no_grad():
        layer(x)
        return steady_seconds(lambda: layer(x), seconds)


def network_seconds(name: str, batch: int, seconds: float) -> float:
    torch.manual_seed(0)
    zoo_name, kwargs = MODELS[name]
    analog = programmed(convert_to_analog(zoo.build(zoo_name, **kwargs).eval(), rpu_config()))
    x = model_input(name, batch)
    with torch.no_grad():
        analog(x)
        return steady_seconds(lambda: analog(x), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum warm seconds timed per workload")
    parser.add_argument("--models", nargs="+", default=["lenet5", "vgg11", "resnet18"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("-o", "--output", default="bench-results/aihwkit.json")
    args = parser.parse_args()
    result = {"aihwkit": __import__("aihwkit").__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "compiled_tiles": RPUConfig.__name__ == "InferenceRPUConfig", "load_average_1min": os.getloadavg()[0],
              "tile_512_b256_s": tile_seconds(args.seconds),
              "models": {name: args.batch / network_seconds(name, args.batch, args.seconds) for name in args.models}}  # fmt: skip
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
