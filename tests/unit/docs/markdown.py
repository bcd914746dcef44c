"""Reading the repository's Markdown the way the doc tests need it: fenced blocks, links and
the anchors GitHub gives to headings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
"""The repository root."""

_FENCE = re.compile(r"^(```+)\s*([\w+-]*)\s*$")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, text, and the line of its opening fence."""

    lang: str
    text: str
    line: int

    @property
    def marker(self) -> str:
        """The first line when it is a ``# word`` marker comment, else ``""``."""
        first = self.text.split("\n", 1)[0].strip()
        return first[2:].strip() if first.startswith("# ") else ""


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced code block of the Markdown file ``path``, in order."""
    blocks: list[Block] = []
    fence: str | None = None
    lang, start, body = "", 0, []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence, lang, start, body = match.group(1), match.group(2), number, []
        elif fence is not None and line.strip() == fence:
            blocks.append(Block(lang, "\n".join(body) + "\n", start))
            fence = None
        elif fence is not None:
            body.append(line)
    assert fence is None, f"{path}:{start}: a fenced block is never closed"
    return blocks


def _prose(path: Path) -> list[tuple[int, str]]:
    """The lines outside fenced blocks, numbered."""
    out: list[tuple[int, str]] = []
    in_fence = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            out.append((number, line))
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """Every Markdown link target of ``path`` (outside code), with its line."""
    return [
        (n, m.group(1))
        for n, line in _prose(path)
        for m in _LINK.finditer(re.sub(r"`[^`]*`", "", line))
    ]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces -> ``-``."""
    text = re.sub(r"`", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading of ``path`` (duplicates get ``-1``, ``-2``... as on
    GitHub)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in _prose(path):
        match = _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            out.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return out
