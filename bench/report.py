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
    """The highest step rate reached with no failed call in it or in any lower step."""
    best = None
    for step in sorted(steps, key=lambda s: s["cps"]):
        if step["failed"] != 0:
            break
        best = step["cps"]
    return best


def side(steps: list[dict[str, Any]], error: str | None = None) -> dict[str, Any]:
    """A SIDE object; ``error`` says why the side could not run (fully)."""
    body: dict[str, Any] = {"steps": steps, "max_sustained_cps": max_sustained_cps(steps)}
    if error is not None:
        body["error"] = error
        body["max_sustained_cps"] = None
    return body


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


def _chart(result: dict[str, Any], png: Path) -> str:
    # optional, not a dependency of callcontrol: ImportError when it is not installed
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")

    fig, (cpu_ax, lat_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, body in result["sides"].items():
        steps = body.get("steps", [])
        cps = [s["cps"] for s in steps]
        cpu = [sum(v or 0 for v in s["cpu_pct_one_core"].values()) for s in steps]
        p99 = [s["digit_to_agent_ms"]["p99"] or 0 for s in steps]
        cpu_ax.plot(cps, cpu, marker="o", label=name)
        lat_ax.plot(cps, p99, marker="o", label=name)
    cpu_ax.set(xlabel="calls/s", ylabel="CPU % of one core (all processes)")
    lat_ax.set(xlabel="calls/s", ylabel="digit -> agent p99 (ms)")
    cpu_ax.legend()
    lat_ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png.name
