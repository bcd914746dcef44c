"""Documents generated from the code, so they cannot drift from it.

    python -m callcontrol.docsgen [--root DIR] [--check]      (``make docs``)

writes ``docs/configuration.md`` (every field of the typed config: type, default, description,
example; from :class:`callcontrol.config.Config`, its attribute docstrings and ``examples``)
and ``docs/openapi.json`` (the OpenAPI document the daemon serves at ``/api/openapi.json``).
``--check`` writes nothing and exits 1 naming every file that differs from what it would write.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from ipaddress import IPv4Network
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from ruamel.yaml import YAML

from callcontrol.config import Config, SecretRef

REGENERATE = "make docs"
"""The command that regenerates every generated document."""

EXAMPLE_NAME = "billing"
"""The name examples give an entry of a mapping of sections (``queues.NAME``)."""

_SCALARS: dict[Any, str] = {
    str: "text",
    int: "integer",
    float: "number",
    bool: "boolean",
    Path: "path",
    IPv4Network: "IPv4 network",
    Any: "any",
}


def _title(path: str) -> str:
    return path or "top level"


def anchor(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub) gives a heading."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in "-_ ")
    return kept.replace(" ", "-")


def _section_link(model: type[BaseModel]) -> str:
    path = next((p for p, m in sections() if m is model), None)
    if path is None:  # a small mapping inside a union (``{percent: N}``): spelt out here
        fields = ", ".join(f"`{name}`: {type_text(info.annotation)}"
                           for name, info in model.model_fields.items())
        return f"a mapping {{{fields}}}"
    return f"[{_title(path)}](#{anchor(_title(path))})"


def type_text(annotation: Any) -> str:
    """A field's type in words: ``integer``, ``list of text``, ``one of a, b``, ``secret``..."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:  # a checked value (callcontrol.config.PbxName...): its base type
        return type_text(args[0])
    if isinstance(annotation, type) and issubclass(annotation, SecretRef):
        return "secret"
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _section_link(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        text = " or ".join(type_text(m) for m in members)
        return f"{text} or null" if len(members) < len(args) else text
    if origin is list:
        return f"list of {type_text(args[0])}"
    if origin is dict:
        return f"mapping {type_text(args[0])} -> {type_text(args[1])}"
    raise TypeError(f"no words for the config type {annotation!r}")


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return info.default


def _required(info: FieldInfo) -> bool:
    return info.default is PydanticUndefined and info.default_factory is None


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {k: _plain(v) for k, v in value.model_dump(exclude_defaults=True).items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _inline(value: Any) -> str:
    """A value as it would be written in YAML, on one line."""
    if value is None:
        return "null"
    return json.dumps(_plain(value), ensure_ascii=False)


def _model_of(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds and how it is written: ``""`` (a section), ``"[]"`` (a list of
    them) or ``".NAME"`` (a mapping name -> it)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return (annotation, "") if not issubclass(annotation, SecretRef) else None
    origin, args = get_origin(annotation), get_args(annotation)
    members = [a for a in args if a is not type(None)]
    if origin in (Union, types.UnionType) and len(members) == 1:  # an optional section
        return _model_of(members[0])
    if origin is list:
        inner = _model_of(args[0])
        return (inner[0], "[]") if inner and not inner[1] else None
    if origin is dict:
        inner = _model_of(args[1])
        return (inner[0], ".NAME") if inner and not inner[1] else None
    return None


def sections(
    model: type[BaseModel] = Config, path: str = ""
) -> Iterator[tuple[str, type[BaseModel]]]:
    """Every section of the config: its dotted path (``asterisk.ari``, ``agents[]``,
    ``queues.NAME``) and its model, parents first."""
    yield path, model
    for name, info in model.model_fields.items():
        found = _model_of(info.annotation)
        if found is not None:
            sub, how = found
            yield from sections(sub, f"{path}.{name}{how}" if path else f"{name}{how}")


def example_value(info: FieldInfo) -> Any:
    """The value a field's example shows: its first ``examples`` entry, else its default."""
    if info.examples:
        return info.examples[0]
    if _required(info):
        found = _model_of(info.annotation)
        if found is not None and not found[1]:
            return example_config(found[0])
        raise ValueError("a required config field needs examples=[...]")
    return _plain(_default(info))


def example_config(model: type[BaseModel] = Config, *, nested: bool = True) -> dict[str, Any]:
    """A valid config of ``model`` showing every field with an example or a non-null default
    (``nested=False``: only the fields that are not sections of their own)."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        found = _model_of(info.annotation)
        if found is not None and not nested:
            continue
        if found is not None and found[1] and not info.examples:
            sample = example_config(found[0])
            out[name] = [sample] if found[1] == "[]" else {EXAMPLE_NAME: sample}
            continue
        value = example_value(info)
        if isinstance(value, dict) and not value and found is not None:
            value = example_config(found[0])
        if value is not None:
            out[name] = value
    return out


def _description(info: FieldInfo) -> str:
    text = " ".join((info.description or "").split())
    return text.replace("``", "`").replace("|", "\\|")


def _at(path: str, sample: dict[str, Any]) -> dict[str, Any]:
    """``sample`` placed where its section is written in the file."""
    wrapped: Any = sample
    for part in reversed(path.split(".") if path else []):
        if part.endswith("[]"):
            wrapped = {part[:-2]: [wrapped]}
        elif part == "NAME":
            wrapped = {EXAMPLE_NAME: wrapped}
        else:
            wrapped = {part: wrapped}
    return dict(wrapped)


def _yaml(data: Any) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 100
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def config_reference() -> str:
    """The text of ``docs/configuration.md``."""
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from callcontrol/config.py by `{REGENERATE}`; do not edit. -->",
        "",
        "The daemon reads one YAML file (`callcontrol --config FILE ...`, default",
        "`config/callcontrol.yaml` or `$CALLCONTROL_CONFIG`). Every field is checked when it",
        "loads; each bad field is reported as `FILE:LINE:COL`, all at once. Unknown fields are",
        "errors. Durations here are numbers of seconds.",
        "",
        "- **Secrets** (type *secret*) are never written in the file: write `{env: NAME}` (read",
        "  from the environment) or `{file: PATH}` (the file's first line). The daemon reads them",
        "  when it starts and stops with an error when one is missing; the other commands do not",
        "  need them.",
        "- **Environment overrides**: `CALLCONTROL__SECTION__FIELD=value` replaces a plain field",
        "  (`CALLCONTROL__HTTP__PORT=9000`, `CALLCONTROL__ASTERISK__ARI__URL=...`).",
        "- **Paths** are relative to `base_dir`, itself relative to the config file's folder.",
        "",
        "| section | what it is |",
        "|---|---|",
    ]
    all_sections = list(sections())
    for path, model in all_sections:
        doc = " ".join((model.__doc__ or "").split())
        lines.append(f"| [{_title(path)}](#{anchor(_title(path))}) | {doc} |")
    for path, model in all_sections:
        lines += ["", f"## {_title(path)}", ""]
        lines += [" ".join((model.__doc__ or "").split()), ""]
        lines += ["| field | type | default | description |", "|---|---|---|---|"]
        for name, info in model.model_fields.items():
            if _model_of(info.annotation) is not None and not info.examples:
                default = "see its section"
            elif _required(info):
                default = "required"
            else:
                default = f"`{_inline(_default(info))}`"
            lines.append(
                f"| `{name}` | {type_text(info.annotation)} | {default} | {_description(info)} |"
            )
        sample = example_config(model, nested=False)
        if sample:
            lines += ["", "```yaml", _yaml(_at(path, sample)).rstrip("\n"), "```"]
    lines += [
        "",
        "## A complete example",
        "",
        "Every field above with its example (or default) value, as one file:",
        "",
        "```yaml",
        _yaml(example_config()).rstrip("\n"),
        "```",
    ]
    return "\n".join(lines) + "\n"


def openapi_document() -> str:
    """The text of ``docs/openapi.json``: the served document, pretty-printed."""
    from callcontrol.api.openapi import OPENAPI

    return json.dumps(OPENAPI, indent=2, ensure_ascii=False) + "\n"


GENERATED: dict[str, Callable[[], str]] = {
    "docs/configuration.md": config_reference,
    "docs/openapi.json": openapi_document,
}
"""Generated file (relative to the repository root) -> what generates its text."""


def stale(root: Path) -> list[str]:
    """The generated files under ``root`` whose text differs from what the code generates."""
    out = []
    for name, generate in GENERATED.items():
        path = root / name
        if not path.is_file() or path.read_text() != generate():
            out.append(name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check``, compare) every generated document."""
    parser = argparse.ArgumentParser(prog="python -m callcontrol.docsgen", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository root")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.root)
        for name in outdated:
            print(f"{name} is out of date: run `{REGENERATE}`", file=sys.stderr)
        return 1 if outdated else 0
    for name, generate in GENERATED.items():
        path = args.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generate())
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
