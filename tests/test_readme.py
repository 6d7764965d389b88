"""The README works top to bottom: every shell and Python block runs, in order, in one fresh folder.

Blocks run as written, with two exceptions: `pip install` lines (the environment running the tests is already
installed), and blocks right after a `<!-- readme-test: skip -->` line (those that need a user's own files, such
as a local MNIST or CIFAR-10 copy). A block's files stay for the next blocks, as they would for a reader.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"(<!-- readme-test: skip -->\s*\n)?```(bash|python)\n(.*?)```", re.S)


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every bash/python block the test runs, in README order."""
    return [(lang, code) for skip, lang, code in _FENCE.findall(text) if not skip]


def _without_pip(code: str) -> str:
    """The block with its `pip install` commands left out; every other line as written."""
    lines = []
    for line in code.splitlines():
        if "pip install" in line:
            line = " && ".join(part.strip() for part in line.split("&&") if not part.strip().startswith("pip install"))
        lines.append(line)
    return "\n".join(lines)


def test_blocks_are_found():
    blocks = readme_blocks(README.read_text())
    assert any(lang == "python" for lang, _ in blocks) and any(lang == "bash" for lang, _ in blocks)


def _percent(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in the README's output"
    return float(found.group(1))


@pytest.mark.slow
def test_readme_runs_top_to_bottom(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    out = ""
    for number, (lang, code) in enumerate(readme_blocks(README.read_text()), 1):
        if lang == "bash":
            command = ["bash", "-euo", "pipefail", "-c", _without_pip(code)]
        else:
            command = [sys.executable, "-c", code]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"README block {number} ({lang}) failed:\n{code}\n--- stderr:\n{done.stderr[-3000:]}"
        out += done.stdout
    # what the text promises about the output: the Python example's first read is `xbarsim eval`'s, and the
    # denoise example keeps a block that raises the test accuracy
    first_read = _percent(r"after programming: ([\d.]+)%", out)
    assert first_read == _percent(r"lenet5_pcm\.h5: digits test accuracy ([\d.]+)% .*t = 0 s", out)
    assert int(re.search(r"(\d+) block\(s\) kept", out).group(1)) >= 1
    denoised = _percent(r"lenet5_adc4_dn\.h5: digits test accuracy ([\d.]+)%", out)
    assert denoised > _percent(r"digits test accuracy: ([\d.]+)% before -> [\d.]+% after\nwrote lenet5_adc4_dn", out)
