"""Every command the README and docs/*.md show in their ``sh`` examples exists: ``callcontrol``
command lines parse with the real argument parser, ``make`` targets are in the Makefile, and
``python -m`` modules can be imported."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcontrol.cli import build_parser

from .markdown import REPO, fenced_blocks

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_OPERATORS = ("|", "||", "&&", ";", ">", ">>", "<", "2>&1", ")")


def _lines(page: Path) -> Iterator[tuple[int, str]]:
    for block in fenced_blocks(page):
        if block.lang != "sh":
            continue
        pending, first = "", 0
        for offset, line in enumerate(block.text.splitlines(), start=1):
            pending, first = (f"{pending} {line}", first) if pending else (line, offset)
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # a quoted string goes on on the next line
                continue
            yield block.line + first, pending
            pending = ""
        assert not pending, f"{page}:{block.line}: unbalanced quotes"


def _words(line: str, variables: dict[str, list[str]]) -> list[str]:
    line = re.sub(r"\$\((.*?)\)", r" ; \1 ; ", line)  # $(cmd) is a command of its own
    words: list[str] = []
    for word in shlex.split(line, comments=True):
        if word.startswith("$") and word[1:] in variables:
            words += variables[word[1:]]
        elif word.endswith(";") and word != ";":
            words += [word[:-1], ";"]
        else:
            words.append(word)
    return words


def _at_command_position(words: list[str], index: int) -> bool:
    """Whether ``words[index]`` is run as a program (not an argument such as a user name)."""
    before = words[:index]
    while before and re.fullmatch(r"\w+=.*", before[-1]):  # VAR=value cmd
        before.pop()
    if not before or before[-1] in SHELL_OPERATORS or before[-1] in ("sudo", "exec"):
        return True
    return len(before) >= 3 and before[-3:-1] == ["sudo", "-u"]


def _commands(words: list[str]) -> Iterator[tuple[str, list[str]]]:
    """(program, arguments) of every callcontrol, make and python -m command in ``words``."""
    for index, word in enumerate(words):
        if not _at_command_position(words, index):
            continue
        rest = []
        for arg in words[index + 1 :]:
            if arg in SHELL_OPERATORS or arg.startswith((">", "2>")):
                break
            rest.append(arg)
        if word == "callcontrol" or word.endswith("/bin/callcontrol"):
            yield "callcontrol", rest
        elif word == "make" and rest:
            yield "make", rest[:1]
        elif word.endswith(("python", "python3")) and rest[:1] == ["-m"]:
            yield "python -m", rest[1:2]


def _found() -> list[tuple[str, str, list[str]]]:
    out = []
    for page in PAGES:
        variables: dict[str, list[str]] = {}
        for line_no, line in _lines(page):
            assignment = re.match(r'^(\w+)="([^"]*)"$', line.strip())
            if assignment:
                variables[assignment.group(1)] = shlex.split(assignment.group(2))
            words = _words(line, variables)
            for index, word in enumerate(list(words)):
                if index and words[index - 1] == "-c":  # sh -c "...": its own command line
                    words += [";", *_words(word, variables)]
            for program, args in _commands(words):
                out.append((f"{page.relative_to(REPO)}:{line_no}", program, args))
    return out


FOUND = _found()


def test_the_pages_show_commands() -> None:
    programs = {program for _, program, _ in FOUND}
    assert programs == {"callcontrol", "make", "python -m"}
    assert len(FOUND) >= 25


@pytest.mark.parametrize(("where", "program", "args"), FOUND, ids=[w for w, _, _ in FOUND])
def test_documented_command_exists(where: str, program: str, args: list[str]) -> None:
    if program == "callcontrol":
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.suppress(SystemExit):
            build_parser().parse_args(args)
            return
        pytest.fail(f"{where}: callcontrol {shlex.join(args)}: {err.getvalue().strip()}")
    elif program == "make":
        targets = re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M)
        assert args[0] in targets, f"{where}: no make target {args[0]!r}"
    else:
        assert importlib.util.find_spec(args[0]) is not None, f"{where}: no module {args[0]}"
