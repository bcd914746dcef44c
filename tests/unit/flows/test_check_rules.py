"""Checker rules that need more than one file or real audio files."""

from __future__ import annotations

import io
import wave
from pathlib import Path

from callcontrol.flows.check import (
    CheckContext,
    audio_problem,
    check_main,
    check_paths,
    load_stock_sounds,
)

MAIN = """\
flow: main
start: hello
steps:
  hello:
    play: [{file: prompts/jingle}, {digits: "{{ caller.number }}"}]
    next: away
  away:
    goto_flow: {flow: second, step: {step}}
"""
SECOND = """\
flow: second
start: hi
steps:
  hi:
    play: [goodbye]
    next: bye
  bye:
    hangup: {}
"""


def write_wav(path: Path, rate: int = 8000, channels: int = 1, width: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(b"\0" * width * channels * 8)


def make_folder(root: Path, step: str) -> Path:
    (root / "main.yaml").write_text(MAIN.replace("{step}", step))
    (root / "second.yaml").write_text(SECOND)
    write_wav(root / "prompts" / "jingle.wav")
    return root


STOCK = CheckContext(stock_sounds={"en": {"goodbye"}})


def test_goto_flow_resolves_across_the_folder(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "bye")
    assert check_paths([folder], STOCK) == []
    assert check_paths([folder / "main.yaml"], STOCK) == []  # the sibling file is found


def test_goto_flow_to_a_missing_step_of_another_flow(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "by")
    out = io.StringIO()
    assert check_main([folder], STOCK, out=out) == 1
    assert out.getvalue() == (
        f"{folder}/main.yaml:8:37: error: flow 'second' has no step 'by'; did you mean 'bye'?\n"
    )


def test_warnings_alone_exit_zero(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, "bye")
    (folder / "second.yaml").write_text(SECOND + "  spare:\n    hangup: {}\n")
    out = io.StringIO()
    assert check_main([folder], STOCK, out=out) == 0
    assert out.getvalue() == f"{folder}/second.yaml:9:3: warning: step 'spare' is never reached\n"


def test_prompts_are_looked_up_in_every_language_of_the_flow(tmp_path: Path) -> None:
    (tmp_path / "multi.yaml").write_text(
        "flow: multi\nlanguage: en\nlanguages: [en, it]\nstart: hi\nsteps:\n"
        "  hi:\n    play: [greeting]\n    next: bye\n  bye:\n    hangup: {}\n"
    )
    write_wav(tmp_path / "prompts" / "en" / "greeting.wav")
    findings = [str(f) for f in check_paths([tmp_path], CheckContext())]
    assert findings == [
        f"{tmp_path}/multi.yaml:7:12: error: prompt 'greeting' not found for language 'it': "
        f"no {tmp_path}/prompts/it/greeting.* or {tmp_path}/prompts/greeting.*, "
        "and not an Asterisk sound"
    ]
    write_wav(tmp_path / "prompts" / "greeting.wav")  # the language-neutral fallback
    assert check_paths([tmp_path], CheckContext()) == []


def test_audio_formats(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    write_wav(good)
    wide = tmp_path / "wide.wav"
    write_wav(wide, rate=16000)
    eight_bit = tmp_path / "eight.wav"
    write_wav(eight_bit, width=1)
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"ID3 not a wav at all")
    mp3 = tmp_path / "song.mp3"
    mp3.write_bytes(b"ID3")
    assert audio_problem(good) is None
    assert audio_problem(tmp_path / "tone.ulaw") is None
    assert audio_problem(tmp_path / "tone.g722") is None
    assert audio_problem(wide) == (
        "WAV is 16000 Hz, 1 channel(s), 16-bit, format 1; Asterisk needs PCM 8000 Hz mono 16-bit"
    )
    assert audio_problem(eight_bit) is not None
    assert audio_problem(fake) == "not a WAV file"
    assert audio_problem(mp3) == ".mp3 is not a format Asterisk plays (use WAV 8 kHz mono)"


def test_stock_sounds_are_read_per_language(tmp_path: Path) -> None:
    (tmp_path / "en" / "digits").mkdir(parents=True)
    (tmp_path / "en" / "goodbye.gsm").write_bytes(b"")
    (tmp_path / "en" / "digits" / "1.ulaw").write_bytes(b"")
    (tmp_path / "it").mkdir()
    (tmp_path / "it" / "goodbye.gsm").write_bytes(b"")
    assert load_stock_sounds(tmp_path) == {"en": {"goodbye", "digits/1"}, "it": {"goodbye"}}
    assert load_stock_sounds(tmp_path / "none") == {}
