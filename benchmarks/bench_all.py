"""Every table of the README's Benchmarks section, in one run (docs/benchmarks.md says how each is measured).

1. ``xbarsim bench tile``: every tile case, ratio to a clean float32 GEMM in the same process;
2. ``xbarsim bench model`` on the ``pcm`` chip: networks against torch alone in its own process, and the
   chip's set-up steps;
3. ``xbarsim bench model`` on the ``aihwkit`` chip (the CNNs), and ``benchmarks/aihwkit_speed.py`` in
   aihwkit's own venv (when it exists: ``benchmarks/fidelity_venv.sh``) on the same workloads.

Every timed process is fresh and imports torch first (``xbarsim.bench.process``). The 1-minute load average is
recorded before and after each step; the machine (CPU model, CPUs this process may use) and the date with it.
Writes the JSON of each step and ``tables.md`` (the README's tables) to the output folder, and prints the tables.

Usage: python benchmarks/bench_all.py [-o bench-results] [--aihwkit-python /work/venv-aihwkit/bin/python]
       [--quick] [--readme README.md]
  --quick: the minimum of 3 timed rounds per measurement, for a smoke run;
  --readme: also put the tables into that README, between its two ``bench_all`` marker lines.
On a larger machine, pin it to 2 cores as the README's tables are: taskset -c 0,1 python benchmarks/bench_all.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from xbarsim.cli import main as xbarsim  # noqa: E402

BEGIN, END = "<!-- bench_all.py tables: begin -->", "<!-- bench_all.py tables: end -->"
AIHWKIT_MODELS = ("lenet5", "vgg11", "resnet18")
AIHWKIT_CASE = "aihwkit preset, bound management, W~N(0,1) x~U(-1,1)"


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": model, "cpus": os.cpu_count(),
            "cpus_usable": usable, "python": platform.python_version()}  # fmt: skip


def step(log: list, name: str, run) -> None:
    before = os.getloadavg()[0]
    run()
    log.append({"step": name, "load_before": before, "load_after": os.getloadavg()[0]})
    print(f"[{name}] load average {before:.2f} -> {log[-1]['load_after']:.2f}", file=sys.stderr)


def tile_table(tile: dict) -> str:
    rows = [r for r in tile["rows"] if r["tile"] == 512]
    batches = sorted({r["batch"] for r in rows})
    lines = ["| case | " + " | ".join(f"batch {b}" for b in batches) + " |", "|---|" + "---|" * len(batches)]
    for case in dict.fromkeys(r["case"] for r in rows):
        ratio = {r["batch"]: r["ratio"] for r in rows if r["case"] == case}
        lines.append(f"| {case} | " + " | ".join(f"{ratio[b]:.2f}" for b in batches) + " |")
    return "\n".join(lines)


def model_tables(model: dict) -> str:
    lines = ["| network | batch | chip /s | torch /s (own process) | ratio |", "|---|---|---|---|---|"]
    for r in model["rows"]:
        lines.append(f"| {r['workload'] if r['model'] == 'lstm' else r['model']} | {r['batch']} | {r['chip_items_per_s']:,.1f} | "
                     f"{r['torch_items_per_s']:,.1f} | {r['ratio']:.3f} |")  # fmt: skip
    lines += ["", "| network | map + program (first / again) | drift to 1 day | new seed | save | load | file |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in model["rows"]:
        if r["model"] == "lstm" and r["batch"] == 1:
            continue
        lines.append(f"| {r['model']} | {r['map_program_cold_s']:.2f} / {r['map_program_s']:.2f} s | {r['drift_s']:.2f} s | "
                     f"{r['program_seed_s']:.2f} s | {r['save_s']:.2f} s | {r['load_s']:.2f} s | {r['chip_file_mb']:.1f} MB |")  # fmt: skip
    return "\n".join(lines)


def aihwkit_table(tile: dict, chip: dict, theirs: dict | None) -> str:
    ours_tile = next(r for r in tile["rows"] if r["case"] == AIHWKIT_CASE and r["tile"] == 512 and r["batch"] == 256)
    ours_ms = 256 / ours_tile["mvm_per_s"] * 1e3
    kind = "not run" if theirs is None else ("compiled tiles" if theirs["compiled_tiles"] else "pure-torch tiles")
    lines = [f"| workload | xbarsim (aihwkit preset) | aihwkit 1.1.0 ({kind}) | xbarsim / aihwkit |", "|---|---|---|---|"]
    their_ms = theirs["tile_512_b256_s"] * 1e3 if theirs else None
    lines.append(f"| 512 x 512 tile, batch 256 | {ours_ms:.2f} ms ({ours_tile['ratio']:.2f}x the GEMM) | "
                 + (f"{their_ms:.2f} ms | {their_ms / ours_ms:.1f}x |" if theirs else "- | - |"))  # fmt: skip
    for r in chip["rows"]:
        their = theirs["models"].get(r["model"]) if theirs else None
        lines.append(f"| {r['model']}, batch {r['batch']} | {r['chip_items_per_s']:,.1f} img/s | "
                     + (f"{their:,.1f} img/s | {r['chip_items_per_s'] / their:.1f}x |" if their else "- | - |"))  # fmt: skip
    return "\n".join(lines)


def header(info: dict, log: list, versions: dict) -> str:
    """The tables' first line: date, machine, versions, the load average around each step, and a warning
    where the machine was loaded (a load average above the CPUs usable, before or after any step)."""
    loads = ", ".join(f"{entry['step']} {entry['load_before']:.1f}-{entry['load_after']:.1f}" for entry in log)
    text = (f"Measured {info['date_utc'][:10]} on {info['cpu']} ({info['cpus_usable']} of {info['cpus']} CPUs usable), "
            f"Python {info['python']}, torch {versions['torch']}, Numba {versions.get('numba')}, torch imported first; "
            f"1-minute load average before-after each step: {loads}. Rerun: `python benchmarks/bench_all.py`.")  # fmt: skip
    if max(max(entry["load_before"], entry["load_after"]) for entry in log) > info["cpus_usable"]:
        text += " **A loaded machine (load average above the CPUs usable): the timings are not to be trusted.**"
    return text


def readme_parts(readme: Path) -> tuple[str, str]:
    """The README's text up to its begin marker line and from its end marker line on (checked before any run)."""
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"{readme}: needs one '{BEGIN}' line and, after it, one '{END}' line")
    return text[: text.index(BEGIN) + len(BEGIN)], text[text.index(END) :]


def put_into_readme(readme: Path, tables: str) -> None:
    """Replace what stands between the README's marker lines with ``tables`` (written whole, then renamed)."""
    head, tail = readme_parts(readme)
    staged = readme.with_name(readme.name + ".new")
    staged.write_text(f"{head}\n{tables}\n{tail}")
    staged.replace(readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="bench-results", help="folder for the JSON files and tables.md")
    parser.add_argument("--aihwkit-python", default="/work/venv-aihwkit/bin/python", help="aihwkit's venv (skipped if absent)")
    parser.add_argument("--quick", action="store_true", help="the minimum of 3 timed rounds per measurement (a smoke run)")
    parser.add_argument("--readme", type=Path, help="also put the tables into this README, between its bench_all marker lines")
    args = parser.parse_args()
    if args.readme is not None:
        readme_parts(args.readme)  # a README without its markers fails now, not after the runs
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    tile_s, model_s = (["--seconds", "0"], ["--seconds", "0"]) if args.quick else ([], [])
    log: list = []
    info = machine()
    step(log, "bench tile", lambda: xbarsim(["bench", "tile", "-o", str(out / "tile.json"), *tile_s]))
    step(log, "bench model pcm", lambda: xbarsim(["bench", "model", "-o", str(out / "model.json"), *model_s]))
    step(log, "bench model aihwkit", lambda: xbarsim(["bench", "model", "--chip", "aihwkit", "--models", *AIHWKIT_MODELS,
                                                      "-o", str(out / "model_aihwkit.json"), *model_s]))  # fmt: skip
    theirs = None
    if Path(args.aihwkit_python).exists():
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
        command = [args.aihwkit_python, str(REPO / "benchmarks" / "aihwkit_speed.py"), "-o", str(out / "aihwkit.json"),
                   "--models", *AIHWKIT_MODELS, *(["--seconds", "0"] if args.quick else [])]  # fmt: skip
        done: list = []
        step(log, "aihwkit", lambda: done.append(subprocess.run(command, env=env, capture_output=True, text=True)))
        if done[0].returncode == 0:
            theirs = json.loads((out / "aihwkit.json").read_text())
        else:  # xbarsim's tables still come out; the aihwkit column says it is missing
            print(f"aihwkit_speed.py failed (exit {done[0].returncode}):\n{done[0].stderr[-2000:]}", file=sys.stderr)
    tile, model, chip = (json.loads((out / name).read_text()) for name in ("tile.json", "model.json", "model_aihwkit.json"))
    versions = model["conditions"][next(iter(model["conditions"]))]["chip"]
    tables = "\n\n".join([header(info, log, versions), "### bench tile (512 x 512 on one 512 x 512 tile: GEMM time / tile time)", tile_table(tile),
                          "### bench model (pcm chip)", model_tables(model),
                          "### against aihwkit (aihwkit preset, the same workloads)", aihwkit_table(tile, chip, theirs)])  # fmt: skip
    (out / "tables.md").write_text(tables + "\n")
    (out / "run.json").write_text(json.dumps({"machine": info, "steps": log}, indent=2))
    if args.readme is not None:
        put_into_readme(args.readme, tables)
    print(tables)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
