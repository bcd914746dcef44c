"""Draw a flow as a Mermaid or Graphviz DOT graph (``callcontrol flows graph``).

Nodes are steps (name and kind), edges are the exits of :meth:`StepBase.exit_refs` labelled
with the exit name: the same table the checker and the engine follow.
"""

from __future__ import annotations

from callcontrol.flows.model import Flow, GotoFlowStep, StepBase


def _label(name: str, step: StepBase) -> str:
    if isinstance(step, GotoFlowStep):
        spec = step.goto_flow
        where = f"{spec.flow}.{spec.step}" if spec.step else spec.flow
        return f"{name}\n(goto_flow {where})"
    return f"{name}\n({step.kind})"


def _edges(flow: Flow) -> list[tuple[str, str, str]]:
    edges = [("", "start", flow.start)]
    for name, step in flow.steps.items():
        edges.extend((name, ref.name, ref.target) for ref in step.exit_refs())
    return edges


def to_mermaid(flow: Flow) -> str:
    """The flow as a Mermaid ``flowchart`` (step ids are numbered; labels are quoted)."""
    ids = {name: f"s{index}" for index, name in enumerate(flow.steps)}

    def node(name: str) -> str:
        if name not in ids:  # an unknown target: drawn so that the mistake shows
            ids[name] = f"s{len(ids)}"
            label = _mermaid_text(f"{name}\n(unknown)")
            lines.append(f'    {ids[name]}["{label}"]:::missing')
        return ids[name]

    lines = ["flowchart TD", "    start((start))"]
    for name, step in flow.steps.items():
        lines.append(f'    {ids[name]}["{_mermaid_text(_label(name, step))}"]')
    for source, exit_name, target in _edges(flow):
        origin = ids[source] if source else "start"
        lines.append(f'    {origin} -->|"{_mermaid_text(exit_name)}"| {node(target)}')
    lines.append("    classDef missing stroke:#c00,stroke-dasharray:4")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", "<br>")


def to_dot(flow: Flow) -> str:
    """The flow as a Graphviz ``digraph`` (step names are the node ids)."""
    lines = [f"digraph {_dot_text(flow.flow)} {{", '    "<start>" [shape=circle, label="start"];']
    for name, step in flow.steps.items():
        lines.append(f"    {_dot_text(name)} [shape=box, label={_dot_text(_label(name, step))}];")
    for source, exit_name, target in _edges(flow):
        origin = _dot_text(source) if source else '"<start>"'
        lines.append(f"    {origin} -> {_dot_text(target)} [label={_dot_text(exit_name)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
