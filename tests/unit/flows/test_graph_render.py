"""Mermaid and DOT drawings follow the steps' exits, labelled with the exit names."""

from __future__ import annotations

from pathlib import Path

from callcontrol.flows.graph import to_dot, to_mermaid
from callcontrol.flows.loader import load_flow_text
from callcontrol.flows.model import Flow

FLOW = """\
flow: tiny
start: menu
steps:
  menu:
    menu:
      prompt: hello-world
      options: {"1": other, "2": repeat, "3": missing}
    failed: bye
  other:
    goto_flow: {flow: sales, step: "say \\"hi\\""}
  bye:
    hangup: {}
"""


def tiny() -> Flow:
    return load_flow_text(FLOW, Path("tiny.yaml")).flow


def test_mermaid() -> None:
    assert to_mermaid(tiny()) == (
        "flowchart TD\n"
        "    start((start))\n"
        '    s0["menu<br>(menu)"]\n'
        '    s1["other<br>(goto_flow sales.say #quot;hi#quot;)"]\n'
        '    s2["bye<br>(hangup)"]\n'
        '    start -->|"start"| s0\n'
        '    s0 -->|"1"| s1\n'
        '    s3["missing<br>(unknown)"]:::missing\n'
        '    s0 -->|"3"| s3\n'
        '    s0 -->|"failed"| s2\n'
        "    classDef missing stroke:#c00,stroke-dasharray:4\n"
    )


def test_dot() -> None:
    assert to_dot(tiny()) == (
        'digraph "tiny" {\n'
        '    "<start>" [shape=circle, label="start"];\n'
        '    "menu" [shape=box, label="menu\\n(menu)"];\n'
        '    "other" [shape=box, label="other\\n(goto_flow sales.say \\"hi\\")"];\n'
        '    "bye" [shape=box, label="bye\\n(hangup)"];\n'
        '    "<start>" -> "menu" [label="start"];\n'
        '    "menu" -> "other" [label="1"];\n'
        '    "menu" -> "missing" [label="3"];\n'
        '    "menu" -> "bye" [label="failed"];\n'
        "}\n"
    )
