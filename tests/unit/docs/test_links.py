"""Every Markdown link of README.md and docs/*.md stays inside the repository and points at
something: a file or folder that exists, and for ``#anchors`` into Markdown files a heading
that exists."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from .markdown import REPO, anchors, links

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

ALLOWED_EXTERNAL: frozenset[str] = frozenset()
"""Links that may leave the repository. None: users get only the repository, so everything a
page needs is in it; a link to a project's own site may be added here once a page needs one."""


def _problem(page: Path, target: str) -> str | None:
    if "://" in target or target.startswith(("mailto:", "//")):
        return None if target in ALLOWED_EXTERNAL else "leaves the repository"
    path_part, _, anchor = target.partition("#")
    path = (page.parent / unquote(path_part)).resolve() if path_part else page
    if not path.is_relative_to(REPO):
        return "leaves the repository"
    if not path.exists():
        return "points at nothing"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"no heading #{anchor} in {path.relative_to(REPO)}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_stay_inside_and_point_at_something(page: Path) -> None:
    problems = [
        f"{page.relative_to(REPO)}:{line}: ({target}) {problem}"
        for line, target in links(page)
        if (problem := _problem(page, target)) is not None
    ]
    assert not problems, "\n".join(problems)


def test_the_readme_lists_every_document() -> None:
    readme = (REPO / "README.md").read_text()
    documentation = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    for page in sorted((REPO / "docs").iterdir()):
        assert f"](docs/{page.name})" in documentation, f"README does not list docs/{page.name}"


def test_the_checker_of_links_catches_what_it_must(tmp_path: Path) -> None:
    readme = REPO / "README.md"
    assert _problem(readme, "../shared/FLOWS.md") == "leaves the repository"
    assert _problem(readme, "https://example.com/") == "leaves the repository"
    assert _problem(readme, "docs/nothing.md") == "points at nothing"
    assert _problem(readme, "docs/flows.md#no-such-heading") is not None
    assert _problem(readme, "docs/flows.md#the-checker") is None
    assert _problem(REPO / "docs" / "api.md", "#errors") is None
