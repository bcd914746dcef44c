"""Prompt resolution: shipped files by language, stock sounds, and spoken values."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcontrol.flows.prompts import PromptError, PromptResolver


def same(text: str) -> str:
    return text


@pytest.fixture
def resolver(tmp_path: Path) -> PromptResolver:
    (tmp_path / "prompts" / "it").mkdir(parents=True)
    (tmp_path / "prompts" / "it" / "welcome.wav").write_bytes(b"RIFF")
    (tmp_path / "prompts" / "welcome.wav").write_bytes(b"RIFF")
    (tmp_path / "prompts" / "jingle.gsm").write_bytes(b"x")
    return PromptResolver(tmp_path / "prompts", to_pbx=lambda p: "/pbx/" + p.name)


def test_files_by_language_then_stock(resolver: PromptResolver, tmp_path: Path) -> None:
    assert resolver.resolve("welcome", "it", same) == ["sound:/pbx/welcome"]
    assert resolver.find_file("welcome", "it") == tmp_path / "prompts" / "it" / "welcome.wav"
    assert resolver.find_file("welcome", "en") == tmp_path / "prompts" / "welcome.wav"
    assert resolver.resolve(["goodbye", {"sound": "jingle"}], "en", same) == [
        "sound:goodbye",
        "sound:/pbx/jingle",
    ]
    assert resolver.resolve({"file": "prompts/jingle"}, "en", same) == ["sound:/pbx/jingle"]


def test_values(resolver: PromptResolver) -> None:
    values = {"{{ n }}": "0042"}
    render = values.get
    assert resolver.resolve({"digits": "{{ n }}"}, "en", lambda t: render(t, t)) == ["digits:0042"]
    assert resolver.resolve({"number": "{{ n }}"}, "en", lambda t: render(t, t)) == ["number:42"]
    assert resolver.resolve({"characters": "ab1"}, "en", same) == ["characters:ab1"]
    assert resolver.resolve({"digits": ""}, "en", same) == []
    assert resolver.resolve({"date": "2026-03-02"}, "en", same) == [
        "sound:digits/day-1",
        "sound:digits/mon-2",
        "sound:digits/h-2",
        "number:2026",
    ]
    assert resolver.resolve({"date": "2026-03-23"}, "it", same) == [
        "sound:digits/day-1",
        "number:23",
        "sound:digits/mon-2",
        "number:2026",
    ]
    assert resolver.resolve({"date": "2026-03-23"}, "en", same)[2:4] == [
        "sound:digits/20",
        "sound:digits/h-3",
    ]
    assert resolver.resolve({"time": "14:05"}, "en", same) == [
        "number:2",
        "sound:digits/oh",
        "number:5",
        "sound:digits/p-m",
    ]
    assert resolver.resolve({"time": "09:00"}, "en", same) == [
        "number:9",
        "sound:digits/oclock",
        "sound:digits/a-m",
    ]
    assert resolver.resolve({"currency": "12.50"}, "en", same) == [
        "number:12",
        "sound:digits/dollars",
        "number:50",
        "sound:cents",
    ]


@pytest.mark.parametrize("prompt", [{"number": "abc"}, {"date": "soon"}, {"x": "y"}, 3])
def test_bad_prompts(resolver: PromptResolver, prompt: object) -> None:
    with pytest.raises(PromptError):
        resolver.resolve(prompt, "en", same)
