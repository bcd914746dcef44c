"""Fixtures shared by unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask 022, under which a file created without a mode is world-readable."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)
