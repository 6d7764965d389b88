"""The documentation stays true: docs/cli.md names every command and option of the parser, no file
points at the team's private notes, and every relative link in the docs leads to a file."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest

from xbarsim.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
CLI_DOC = ROOT / "docs" / "cli.md"
FORBIDDEN = ("../" + "shared", "DESIGN" + ".md")  # split, so that only this file may hold them


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command path, parser) of the parser and of every subcommand, depth first: ((), root), (("bench",), ...), ..."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += commands(child, (*path, name))
    return found


def documented_options(parser: argparse.ArgumentParser) -> list[str]:
    """What the page must name: every option string, and every positional argument's name."""
    names = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        names += action.option_strings or [action.dest]
    return names


def sections(text: str) -> dict[str, str]:
    """The text under each ``### heading`` of the page, by heading, plus the part before the
    first command ("" key): the common options live there."""
    parts = re.split(r"^### +(.+?)\s*$", text, flags=re.MULTILINE)
    found = {"": parts[0]}
    for heading, body in zip(parts[1::2], parts[2::2]):
        found[heading.strip()] = body
    return found


def named(option: str, text: str) -> bool:
    """Whether ``option`` appears as a word of its own (`--seed`, `--noisy SIGMA`), not inside a longer name (`--model-args`)."""
    return re.search(r"(?<![\w-])" + re.escape(option) + r"(?![\w-])", text) is not None


CLI_COMMANDS = commands(build_parser())


def test_the_command_walk_sees_every_level():
    paths = {path for path, _ in CLI_COMMANDS}
    assert {(), ("bench",), ("bench", "tile"), ("sweep",), ("denoise",)} <= paths


@pytest.mark.parametrize("path, parser", CLI_COMMANDS, ids=[" ".join(p) or "xbarsim" for p, _ in CLI_COMMANDS])
def test_cli_doc_names_every_command_and_option(path, parser):
    pages = sections(CLI_DOC.read_text())
    leaf = not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
    if path and leaf:
        heading = " ".join(path)
        assert heading in pages, f"docs/cli.md has no '### {heading}' section"
        text = pages[heading] + pages[""]
    else:
        text = "\n".join(pages.values()) if path else pages[""]
    missing = [option for option in documented_options(parser) if not named(option, text)]
    assert not missing, f"docs/cli.md does not name {missing} of `xbarsim {' '.join(path)}`"


def test_no_file_points_at_private_notes():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    this = Path(__file__).resolve().relative_to(ROOT).as_posix()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if not name or name == this or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        offenders += [f"{name}: {word}" for word in FORBIDDEN if word in text]
    assert not offenders, f"files that point at the team's private notes: {offenders}"


LINK = re.compile(r"\]\(([^)\s]+?\.md)(?:#[^)\s]*)?\)")  # ](page.md) or ](page.md#anchor)


def broken_links(pages: list[Path]) -> list[str]:
    """``page: target`` for every relative ``](target.md)`` link whose file does not exist."""
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if "://" not in target and not (page.parent / target).is_file():
                broken.append(f"{page.name}: {target}")
    return broken


def test_relative_links_in_the_docs_lead_to_files():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert not broken_links(pages), f"links to files that do not exist: {broken_links(pages)}"


def test_link_check_finds_a_broken_link(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "cli.md").write_text("# cli")
    (tmp_path / "README.md").write_text("top")
    page = tmp_path / "sub" / "page.md"
    page.write_text("[a](../cli.md), [b](../cli.md#seed), [c](../README.md), [d](missing.md#x), [e](https://x.org/y.md)")
    assert broken_links([page]) == ["page.md: missing.md"]
