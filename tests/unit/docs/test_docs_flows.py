"""docs/flows.md stays true: every YAML example passes the real checker, the broken examples
print exactly what the page shows, the case files pass, and every step kind and key of the
flow model is described.

Markers (first line of a ```yaml block): none = a whole flow; ``# fragment`` = steps, wrapped
into a flow whose start is the first step and which has an ``end`` step; ``# config`` = an
excerpt of the daemon's config (merged into the demo config, which the flows are checked
against); ``# cases`` = a flow test case file, run by ``flows test``; ``# broken`` = a flow the
checker refuses, followed by a ```text block holding its exact output.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel
from ruamel.yaml import YAML

from callcontrol.config import Config, load_config
from callcontrol.flows.check import CheckContext, check_main, check_paths
from callcontrol.flows.cli import shared_schedules
from callcontrol.flows.flowtest import SimulationContext, run_case_file
from callcontrol.flows.model import STEP_MODELS, Flow, StepBase
from callcontrol.flows.registry import load_folder
from callcontrol.flows.simulate import run_simulation

from .markdown import REPO, Block, fenced_blocks

DOC = REPO / "docs" / "flows.md"
MARKERS = ("", "fragment", "config", "cases", "broken")
BLOCKS = fenced_blocks(DOC)
YAML_BLOCKS = [b for b in BLOCKS if b.lang == "yaml"]


def _ids(blocks: list[Block]) -> list[str]:
    return [f"flows.md:{b.line}" for b in blocks]


def _of(marker: str) -> list[Block]:
    return [b for b in YAML_BLOCKS if b.marker == marker]


def _load(text: str) -> Any:
    return YAML(typ="safe").load(text)


def _deep_merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _config(tmp_path: Path) -> Config:
    """The demo config with every ``# config`` excerpt of the page merged in."""
    data = _load((REPO / "config" / "callcontrol.yaml").read_text())
    for block in _of("config"):
        _deep_merge(data, _load(block.text))
    data["base_dir"] = str(REPO)
    path = tmp_path / "callcontrol.yaml"
    out = io.StringIO()
    YAML().dump(data, out)
    path.write_text(out.getvalue())
    return load_config(path, read_secrets=False)


def _context(config: Config) -> CheckContext:
    return CheckContext(known_queues=set(config.queues), shared_schedules=shared_schedules(config))


def _flow_folder(root: Path) -> Path:
    folder = root / "ivr_flows"
    folder.mkdir(parents=True)
    (folder / "prompts").symlink_to(REPO / "ivr_flows" / "prompts")
    return folder


def _wrap_fragment(block: Block, name: str) -> str:
    steps = _load(block.text)
    assert isinstance(steps, dict) and steps, f"flows.md:{block.line}: a fragment is steps"
    body = block.text.split("\n", 1)[1]
    text = f"flow: {name}\nstart: {next(iter(steps))}\nsteps:\n"
    text += "".join(f"  {line}\n" if line else "\n" for line in body.splitlines())
    if "end" not in steps:
        text += "  end:\n    hangup: {}\n"
    return text


def _write_examples(folder: Path) -> dict[Path, Block]:
    """Every whole flow and fragment of the page as a file of ``folder``."""
    written: dict[Path, Block] = {}
    for block in _of(""):
        name = _load(block.text)["flow"]
        path = folder / f"{name}.yaml"
        assert path not in written, f"flows.md:{block.line}: flow {name!r} is written twice"
        path.write_text(block.text)
        written[path] = block
    for block in _of("fragment"):
        name = f"fragment_{block.line}"
        path = folder / f"{name}.yaml"
        path.write_text(_wrap_fragment(block, name))
        written[path] = block
    return written


def test_every_yaml_block_has_a_known_marker() -> None:
    assert YAML_BLOCKS, "docs/flows.md has no YAML examples"
    unknown = [f"flows.md:{b.line}: {b.marker!r}" for b in YAML_BLOCKS if b.marker not in MARKERS]
    assert not unknown, f"unknown example markers (use one of {MARKERS}): {unknown}"


def test_most_examples_are_whole_flows() -> None:
    whole = len(_of("")) + len(_of("broken"))
    assert whole >= 8 and len(_of("fragment")) <= 2 * whole


def test_every_example_flow_passes_the_checker(tmp_path: Path) -> None:
    config = _config(tmp_path)
    folder = _flow_folder(tmp_path / "examples")
    written = _write_examples(folder)
    findings = check_paths([folder], _context(config))
    problems = [
        f"flows.md:{written[Path(f.path)].line}: {f}"
        for f in findings
        if f.severity == "error" or Path(f.path).stem[:9] != "fragment_"
    ]
    assert not problems, "examples of docs/flows.md the checker does not accept:\n" + "\n".join(
        problems
    )
    assert len(written) == len(_of("")) + len(_of("fragment"))


@pytest.mark.parametrize("block", _of("broken"), ids=_ids(_of("broken")))
def test_broken_examples_print_what_the_page_shows(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    following = BLOCKS[BLOCKS.index(block) + 1]
    assert following.lang == "text", f"flows.md:{block.line}: put the checker's output after it"
    config = _config(tmp_path)
    folder = _flow_folder(tmp_path / "broken")
    name = _load(block.text)["flow"]
    (folder / f"{name}.yaml").write_text(block.text)
    monkeypatch.chdir(folder.parent)
    out = io.StringIO()
    status = check_main([Path("ivr_flows") / f"{name}.yaml"], _context(config), out=out)
    assert status == 1
    assert out.getvalue() == following.text, (
        f"flows.md:{following.line}: the checker now prints:\n{out.getvalue()}"
    )


def test_the_case_files_pass(tmp_path: Path) -> None:
    config = _config(tmp_path)
    folder = _flow_folder(tmp_path / "cases")
    _write_examples(folder)
    (folder / "tests").mkdir()
    context = SimulationContext(shared_schedules(config), ZoneInfo(config.site.timezone))
    assert _of("cases")
    for block in _of("cases"):
        case_file = folder / "tests" / f"cases_{block.line}.yaml"
        case_file.write_text(block.text)
        results = run_case_file(case_file, context)
        assert results, f"flows.md:{block.line}: no cases"
        failed = [(r.name, r.problems) for r in results if not r.passed]
        assert not failed, f"flows.md:{block.line}: {failed}"


async def test_every_whole_example_runs_in_the_simulator(tmp_path: Path) -> None:
    """Beyond the checker: the engine runs each example flow without a step failing, except
    http steps (the simulator has no fixtures for them here, so they take their error exit)."""
    config = _config(tmp_path)
    folder = _flow_folder(tmp_path / "run")
    _write_examples(folder)
    flows, refused = load_folder(folder)
    assert not refused
    for block in _of(""):
        name = _load(block.text)["flow"]
        for script in ("", "1", "123456#", "T T T", "H"):
            result = await run_simulation(
                name, flows, digits=script, schedules=shared_schedules(config),
                site_timezone=ZoneInfo(config.site.timezone),
            )
            failures = [
                data for kind, data in result.timeline
                if kind == "step_error" and "no http fixture" not in data["error"]
            ]
            assert not failures, f"flows.md:{block.line} with {script!r}: {failures}"
            assert result.outcome != "failed", f"flows.md:{block.line} with {script!r}"


def _section(heading: str) -> str:
    text = DOC.read_text()
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ )", text, re.S | re.M)
    assert match, f"docs/flows.md has no section {heading!r}"
    return match.group(1)


def _keys(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _spec(step: type[StepBase]) -> type[BaseModel] | None:
    annotation = step.model_fields[step.KIND].annotation
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    specs = [
        c
        for c in candidates
        if isinstance(c, type) and issubclass(c, BaseModel) and c.__name__.endswith("Spec")
    ]
    return specs[0] if specs else None


@pytest.mark.parametrize("kind", list(STEP_MODELS))
def test_every_step_kind_and_key_is_described(kind: str) -> None:
    section = _section(kind)
    step = STEP_MODELS[kind]
    spec = _spec(step)
    keys = [k for k in _keys(step) if k not in ("tags", "error", kind)]
    if spec is not None and kind != "hours":
        keys += _keys(spec)
    missing = [k for k in keys if f"`{k}`" not in section]
    assert not missing, f"docs/flows.md section {kind!r} does not describe {missing}"


def test_every_top_level_key_is_described() -> None:
    section = _section("The file")
    missing = [k for k in _keys(Flow) if f"`{k}`" not in section]
    assert not missing, f"docs/flows.md 'The file' does not describe {missing}"
