"""README.md and docs/ stay true: every ``ldmatrix`` command in them is one the CLI accepts as
written, every file they name is there, every page they link exists, and the README stays short."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from harness.commands import parser

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def commands(text: str) -> list[str]:
    """The ``ldmatrix ...`` lines of a page's shell blocks and ``$ ldmatrix`` examples, continuations joined."""
    found = []
    in_shell = False
    pending = ""
    for line in text.splitlines():
        if line.startswith("```"):
            in_shell = line.strip() in ("```sh", "```console", "```")
            continue
        line = pending + line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        prompted = line.startswith("$ ")
        line = line.removeprefix("$ ")
        if (in_shell or prompted) and line.startswith("ldmatrix "):
            found.append(line)
    return found


def argv_of(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    return words[1:]


def test_the_pages_have_commands_to_check() -> None:
    every = [c for page in PAGES for c in commands(page.read_text(encoding="utf-8"))]
    assert len(every) > 30 and any(c.startswith("ldmatrix bisect") for c in every)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_is_one_the_cli_accepts(page: Path) -> None:
    wrong = []
    for command in commands(page.read_text(encoding="utf-8")):
        try:
            parser().parse_args(argv_of(command))
        except SystemExit as refused:
            wrong.append(f"{command}  (exit {refused.code})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_and_page_named_is_there(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w/.])((?:harness|tests|matrices|docs|bench|images|\.ci|\.github)/[\w./-]*\w)", text))
    named |= {str((page.parent / link).resolve().relative_to(REPO))
              for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)}
    missing = sorted(n for n in named if not (REPO / n).exists() and not any(c in n for c in "*<>"))
    assert not missing, missing


def test_the_readme_is_what_a_newcomer_needs() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for section in ("## The two commands", "## What it shows", "## Test your own binary", "## The CLI at a glance",
                    "## Where to read on"):
        assert section in text
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", text))
    assert linked == {p.name for p in (REPO / "docs").glob("*.md")}  # every page is reachable from it
