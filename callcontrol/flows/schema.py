"""The JSON Schema of the flow language (``callcontrol flows schema``), for editor completion.

Drawn from the pydantic models of :mod:`callcontrol.flows.model`, then tidied: YAML key names
(``if``, ``else``, ``validate``, ``json``), no generated per-field titles, and a header naming the
dialect so editors (e.g. the YAML language server) pick it up.
"""

from __future__ import annotations

import json
from typing import Any

from callcontrol.flows.model import Flow

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def flow_json_schema() -> dict[str, Any]:
    """The JSON Schema of one flow file."""
    schema = Flow.model_json_schema(by_alias=True, mode="validation")
    _drop_field_titles(schema)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "callcontrol IVR flow",
        "description": "One file of ivr_flows/: see FLOWS.md for the meaning of every key.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def flow_json_schema_text() -> str:
    """:func:`flow_json_schema` as indented JSON text (what the CLI prints)."""
    return json.dumps(flow_json_schema(), indent=2, sort_keys=True) + "\n"


def _drop_field_titles(node: Any) -> None:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for prop in properties.values():
                if isinstance(prop, dict):
                    prop.pop("title", None)
        for value in node.values():
            _drop_field_titles(value)
    elif isinstance(node, list):
        for item in node:
            _drop_field_titles(item)
