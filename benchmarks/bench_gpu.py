"""Networks on a chip on one GPU against torch float32 on the same GPU, in under 10 minutes: ResNet-18
(CIFAR-shaped) and the transformers, each where the zoo and the benchmark workloads have it (a network
that is not there yet is skipped with a message). The same measurement as ``xbarsim bench model
--device cuda``; the table names the GPU.

    python benchmarks/bench_gpu.py -o bench-results/gpu.json
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch  # before xbarsim, as in a user's script

from xbarsim.bench import model
from xbarsim.bench.workloads import MODELS
from xbarsim.models import zoo

WANTED = ("resnet18", "vit", "chargpt")


def available(names: tuple[str, ...]) -> list[str]:
    """The networks both the zoo and the benchmark workloads know; a message for each one left out."""
    found = []
    for name in names:
        if name not in zoo.ZOO or name not in MODELS:
            where = " and ".join(w for w, known in (("the zoo", name in zoo.ZOO), ("bench/workloads.py", name in MODELS)) if not known)
            print(f"skipping {name}: not in {where} yet", file=sys.stderr)
            continue
        found.append(name)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the GPU (cuda, cuda:1, ...)")
    parser.add_argument("--batch", type=int, default=256, help="items per forward")
    parser.add_argument("--chip", default="pcm", help="chip preset")
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum warm seconds timed per network")
    parser.add_argument("-o", "--output", default="bench-results/gpu.json", help="JSON file for the results")
    args = parser.parse_args()
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print(f"no CUDA device here (torch {torch.__version__}): nothing to measure", file=sys.stderr)
        return 2
    names = available(WANTED)
    start = time.perf_counter()
    result = model.run(tuple(names), args.chip, args.batch, (args.batch,), args.seconds, device=args.device,
                       progress=lambda row: print(f"{row.model}: {row.ratio:.3f}x float ({time.perf_counter() - start:.0f} s)", file=sys.stderr))  # fmt: skip
    gpu = next(iter(result["conditions"].values()))["chip"].get("gpu", args.device) if result["rows"] else args.device
    print(f"{gpu}, batch {args.batch}, chip preset {args.chip}, {time.perf_counter() - start:.0f} s in all")
    print(model.format_table(result))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"benchmark": "gpu", "gpu": gpu, **result}, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
