"""The bench's result file (DECISIONS.md "Bench results") and its optional chart."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]


def max_sustained_cps(steps: list[dict[str, Any]]) -> float | None:
    """The highest step rate reached with no failed call and no row mismatch in it or in any
    lower step."""
    best = None
    for step in sorted(steps, key=lambda s: s["cps"]):
        if step["failed"] != 0 or _mismatch(step):
            break
        best = step["cps"]
    return best


def _mismatch(step: dict[str, Any]) -> int:
    rows = step.get("db_rows") or {}
    return sum(int(rows.get(k, 0)) for k in ("missing", "doubled", "extra", "open"))


def side(steps: list[dict[str, Any]], error: str | None = None) -> dict[str, Any]:
    """A SIDE object; ``error`` says why the side could not run (fully)."""
    body: dict[str, Any] = {"steps": steps, "max_sustained_cps": max_sustained_cps(steps)}
    if error is not None:
        body["error"] = error
        body["max_sustained_cps"] = None
    return body


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def step_line(step: dict[str, Any]) -> str:
    """One line for the console: completed, CPU, latencies, rows."""
    cpu, rows = step["cpu_pct_one_core"], step.get("db_rows") or {}
    prompt, agent = step["digit_to_prompt_ms"], step["digit_to_agent_ms"]
    text = (f"{step['completed']}/{step['attempted']} completed, Asterisk saw "
            f"{step['asterisk_calls']}, peak {step['concurrent_peak']} concurrent, CPU daemon "
            f"{_fmt(cpu['daemon'])} % Asterisk {_fmt(cpu['asterisk'])} %, digit->prompt p50/p99 "
            f"{_fmt(prompt['p50'])}/{_fmt(prompt['p99'])} ms, digit->agent "
            f"{_fmt(agent['p50'])}/{_fmt(agent['p99'])} ms")
    if rows:
        text += (f", rows {rows['calls']} ({rows['events_per_call']} events/call; missing "
                 f"{rows['missing']}, doubled {rows['doubled']}, extra {rows['extra']}, open "
                 f"{rows['open']})")
    return text


TABLE_HEADER = ("| side | calls/s | attempted | failed | Asterisk calls | daemon rows "
                "| daemon CPU % | Asterisk CPU % | daemon RSS MB | Asterisk RSS MB "
                "| digit->prompt p50/p99 ms | digit->agent p50/p99 ms | events/call |")


def table(result: dict[str, Any]) -> str:
    """The result as a Markdown table (both sides, every step)."""
    lines = [TABLE_HEADER, "|" + "---|" * (TABLE_HEADER.count("|") - 1)]
    for name, body in result["sides"].items():
        for s in body.get("steps", []):
            rows = s.get("db_rows") or {}
            cpu, rss = s["cpu_pct_one_core"], s["peak_rss_mb"]
            prompt, agent = s["digit_to_prompt_ms"], s["digit_to_agent_ms"]
            cells = [name, _fmt(s["cps"]), s["attempted"], s["failed"], s["asterisk_calls"],
                     _fmt(rows.get("calls")), _fmt(cpu["daemon"]), _fmt(cpu["asterisk"]),
                     _fmt(rss["daemon"]), _fmt(rss["asterisk"]),
                     f"{_fmt(prompt['p50'])} / {_fmt(prompt['p99'])}",
                     f"{_fmt(agent['p50'])} / {_fmt(agent['p99'])}",
                     _fmt(rows.get("events_per_call"))]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        if "error" in body:
            lines.append(f"| {name} | error: {body['error'][:200]} |")
    return "\n".join(lines)


def git_commit() -> str:
    """The checked-out commit (``+dirty`` when the tree has changes)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT, capture_output=True, text=True,
                              check=False).stdout.strip()
    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain") else "")


def build(started: datetime, asterisk: str, settings: dict[str, Any],
          sides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The whole result document."""
    cc = sides.get("callcontrol", {}).get("max_sustained_cps")
    dp = sides.get("dialplan", {}).get("max_sustained_cps")
    return {
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_commit(),
        "machine": {"cores": os.cpu_count(), "asterisk": asterisk},
        "settings": settings,
        "sides": sides,
        "ratio_sustained_cps": round(cc / dp, 3) if cc and dp else None,
    }


def write(result: dict[str, Any], out_dir: Path) -> Path:
    """Write ``out_dir/<UTC timestamp>.json`` (and a PNG beside it when matplotlib is there:
    the result then names it in ``chart``, else says why not)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = result["started"].replace(":", "").replace("-", "")
    path = out_dir / f"{stamp}.json"
    png = path.with_suffix(".png")
    try:
        result["chart"] = _chart(result, png)
    except ImportError:
        result["chart"] = None
        result["chart_skipped"] = "matplotlib is not installed"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files (the ``bench`` extra, not a dependency of
    callcontrol): ImportError when it is not installed."""
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def _chart(result: dict[str, Any], png: Path) -> str:
    plt = pyplot()

    fig, (fail_ax, cpu_ax, lat_ax) = plt.subplots(1, 3, figsize=(15, 4.5))
    colors = {"dialplan": "tab:blue", "callcontrol": "tab:orange"}
    for name, body in result["sides"].items():
        steps = body.get("steps", [])
        color = colors.get(name)
        cps = [s["cps"] for s in steps]
        fail_ax.plot(cps, [100 * s["failed"] / s["attempted"] for s in steps], marker="o",
                     color=color, label=name)
        cpu_ax.plot(cps, [s["cpu_pct_one_core"]["asterisk"] or 0 for s in steps], marker="o",
                    color=color, label=f"{name}: Asterisk")
        if any(s["cpu_pct_one_core"]["daemon"] is not None for s in steps):
            cpu_ax.plot(cps, [s["cpu_pct_one_core"]["daemon"] or 0 for s in steps],
                        marker="s", linestyle="--", color=color, label=f"{name}: daemon")
        lat_ax.plot(cps, [s["digit_to_agent_ms"]["p99"] or 0 for s in steps], marker="o",
                    color=color, label=f"{name}: digit->agent")
        lat_ax.plot(cps, [s["digit_to_prompt_ms"]["p99"] or 0 for s in steps], marker="^",
                    linestyle=":", color=color, label=f"{name}: digit->prompt")
    fail_ax.set(title="failed calls", xlabel="calls/s", ylabel="% of calls placed")
    cpu_ax.set(title="CPU (steady part of each step)", xlabel="calls/s",
               ylabel="% of one core")
    lat_ax.set(title="p99 latency (AMI timestamps)", xlabel="calls/s", ylabel="ms")
    lat_ax.set_yscale("symlog", linthresh=20)
    for ax in (fail_ax, cpu_ax, lat_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"make bench {result['started']} ({result['git'][:12]}): "
                 f"{result['settings']['call_seconds']:g} s talk, "
                 f"{result['settings']['agents']} agents")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png.name
