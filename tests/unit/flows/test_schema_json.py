"""The JSON Schema of flows, for editors: YAML key names, every step kind, tidy."""

from __future__ import annotations

import json

import jsonschema
from test_model_example import HOTLINE

from callcontrol.flows.model import STEP_MODELS
from callcontrol.flows.schema import SCHEMA_DIALECT, flow_json_schema, flow_json_schema_text
from callcontrol.yamlpos import load_yaml_with_positions


def test_schema_header_and_top_level_keys() -> None:
    schema = flow_json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "flow", "description", "language", "start", "variables", "schedules", "steps",
        "global_keys", "on_error", "on_hangup", "languages",
    }  # fmt: skip
    assert set(schema["required"]) == {"flow", "start", "steps"}


def test_every_step_kind_is_offered_with_its_yaml_names() -> None:
    schema = flow_json_schema()
    kinds = schema["properties"]["steps"]["additionalProperties"]["oneOf"]
    refs = [k["$ref"].rsplit("/", 1)[1] for k in kinds]
    defs = schema["$defs"]
    actions = {key for ref in refs for key in defs[ref]["properties"] if key in STEP_MODELS}
    assert actions == set(STEP_MODELS)
    assert "validate" in defs["GatherSpec"]["properties"]
    assert "json" in defs["HttpSpec"]["properties"]
    assert defs["BranchCase"]["required"] == ["if", "goto"]
    assert "else" in defs["BranchStep"]["required"]
    assert defs["MenuSpec"]["properties"]["options"]["propertyNames"]["enum"][:2] == ["1", "2"]


def test_no_generated_field_titles_and_text_is_json() -> None:
    text = flow_json_schema_text()
    assert json.loads(text) == flow_json_schema()
    assert '"title": "Tags"' not in text


def test_flows_md_example_is_valid_and_a_typo_is_not() -> None:
    data, _ = load_yaml_with_positions(HOTLINE, "hotline.yaml")
    validator = jsonschema.Draft202012Validator(flow_json_schema())
    assert list(validator.iter_errors(data)) == []
    data["steps"]["welcome"]["nxt"] = "goodbye"
    assert len(list(validator.iter_errors(data))) == 1
