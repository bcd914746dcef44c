"""Pure parts of callcontrol.sipua: dial settings, sipp statistics, the sipp scratch folder."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from callcontrol.sipua.client import PeerEvent
from callcontrol.sipua.dial import (
    DialSettingsError,
    add_dial_arguments,
    read_env_file,
    resolve_target,
    run_dial,
)
from callcontrol_testing.sipp import (
    SippError,
    parse_duration_ms,
    parse_stat_csv,
    prepare_workdir,
)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_dial_arguments(parser)
    return parser.parse_args(list(argv))


def test_env_file_lines_comments_quotes_and_export(tmp_path: Path) -> None:
    path = tmp_path / "local.env"
    path.write_text("# c\n\nSIP_HOST=10.0.0.1\nexport SIP_PORT='5070'\nX=\"a=b\"\nnoise\n")
    assert read_env_file(path) == {"SIP_HOST": "10.0.0.1", "SIP_PORT": "5070", "X": "a=b"}
    assert read_env_file(tmp_path / "missing.env") == {}


def test_flags_beat_environment_beats_env_file(tmp_path: Path) -> None:
    path = tmp_path / "local.env"
    path.write_text("SIP_PORT=5070\nDEMO_CALLER_USER=file-user\nDEMO_CALLER_PASSWORD=file-pw\n")
    target = resolve_target(
        _args("100", "--env-file", str(path), "--user", "flag-user"),
        {"DEMO_CALLER_PASSWORD": "env-pw"},
    )
    assert (target.host, target.port, target.user, target.password) == (
        "127.0.0.1",
        5070,
        "flag-user",
        "env-pw",
    )
    assert "env-pw" not in repr(target)


def test_password_file_flag(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    target = resolve_target(
        _args("100", "--env-file", str(tmp_path / "none"), "--password-file", str(secret)),
        {"DEMO_CALLER_USER": "u"},
    )
    assert target.password == "from-file"


def test_missing_credentials_are_named(tmp_path: Path) -> None:
    with pytest.raises(DialSettingsError, match="no caller user and no password"):
        resolve_target(_args("100", "--env-file", str(tmp_path / "none")), {})
    with pytest.raises(DialSettingsError, match="not a number"):
        resolve_target(
            _args("100", "--env-file", str(tmp_path / "none")),
            {"DEMO_CALLER_USER": "u", "DEMO_CALLER_PASSWORD": "p", "SIP_PORT": "x"},
        )


async def test_run_dial_exits_2_without_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_dial(_args("100", "--env-file", str(tmp_path / "none")), {}) == 2
    assert "make run" in capsys.readouterr().err


def test_dial_arguments_defaults() -> None:
    args = _args("100", "--digits", "1", "--digits", "123#")
    assert args.digits == ["1", "123#"]
    assert (args.wait, args.hangup_after, args.digit_pause) == (30.0, 20.0, 2.0)
    assert args.record is None and args.play is None and not args.register


STATS = (
    "StartTime;TotalCallCreated;SuccessfulCall(C);FailedCall(C);ResponseTimeinvite(C);\n"
    "t0;0;0;0;00:00:00:000000;\n"
    "t1;5;4;1;00:00:01:250000;\n"
)


def test_sipp_stats_use_the_last_line() -> None:
    stats = parse_stat_csv(STATS)
    assert (stats.created, stats.successful, stats.failed) == (5, 4, 1)
    assert stats.response_time_ms == pytest.approx(1250.0)
    with pytest.raises(SippError):
        parse_stat_csv(STATS.splitlines()[0])


def test_sipp_durations() -> None:
    assert parse_duration_ms("00:00:00:004000") == pytest.approx(4.0)
    assert parse_duration_ms("01:02:03:500") == pytest.approx(3723500.0)


def test_sipp_workdir_holds_pcaps_and_a_private_injection_file(tmp_path: Path) -> None:
    injection = prepare_workdir(tmp_path, "caller", "s3cret", "#")
    assert (tmp_path / "pcap" / "g711a.pcap").stat().st_size > 0
    pound = Path("/usr/share/sip-tester/dtmf_2833_pound.pcap").read_bytes()
    assert (tmp_path / "pcap" / "dtmf.pcap").read_bytes() == pound
    assert stat.S_IMODE(injection.stat().st_mode) == 0o600
    lines = injection.read_text().splitlines()
    assert lines == ["SEQUENTIAL", "caller;[authentication username=caller password=s3cret];"]
    with pytest.raises(SippError, match="digit 'A'"):
        prepare_workdir(tmp_path, "caller", "s3cret", "A")


def test_peer_event_matching() -> None:
    event = PeerEvent("disconnected", {"call_id": "out1", "code": 486})
    assert event.matches("disconnected", {"call_id": "out1"})
    assert not event.matches("disconnected", {"call_id": "out2"})
    assert not event.matches("confirmed", {})
    assert event["code"] == 486 and event.get("missing", 7) == 7
