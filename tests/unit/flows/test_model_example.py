"""FLOWS.md's full example loads, exposes its exits, and checks clean with its prompts."""

from __future__ import annotations

import io
import wave
from pathlib import Path

from callcontrol.flows.check import CheckContext, check_main, check_paths
from callcontrol.flows.loader import load_flow, load_flow_text
from callcontrol.flows.model import HoursStep, MenuStep, QueueStep, RecordStep

# The example of FLOWS.md, verbatim.
HOTLINE = """\
# ivr_flows/hotline.yaml
flow: hotline                 # unique name (the file name without .yaml)
description: Support hotline
language: en                  # language of Asterisk sound prompts
start: welcome                # the first step
variables:                    # defaults, readable and settable by steps
  tier: standard
schedules:
  office:
    timezone: Europe/Rome
    open:
      mon-fri: ["08:00-13:00", "14:00-20:00"]
      sat: ["09:00-13:00"]
    closed_dates: ["2026-12-25", "2026-12-26"]
steps:
  welcome:
    play: [welcome]           # Asterisk sound names; see "Prompts"
    tags: [inbound]           # tags added to the call record when this step is entered
    next: office_hours
  office_hours:
    hours: office
    open: main_menu
    closed: after_hours
  main_menu:
    menu:
      prompt: main-menu
      options: {"1": billing, "2": account, "0": operator}
      timeout: 5s
      attempts: 3
      invalid_prompt: invalid-option
    failed: operator          # after the last attempt
  account:
    gather:
      prompt: enter-account
      min_digits: 6
      max_digits: 10
      finish_on: "#"
      timeout: 8s
      attempts: 2
      validate: "^[0-9]{6,10}$"
      save_as: account
    next: lookup
    failed: operator
  lookup:
    http:
      method: GET
      url: "https://crm.example/customers/{{ account }}"
      timeout: 2s
      save_as: customer
    next: vip_check
    error: billing
  vip_check:
    branch:
      - if: "customer.tier == 'vip'"
        goto: vip_queue
    else: billing
  billing:
    queue:
      name: billing
      priority: 0
      max_wait: 10m
      announce_position: 60s
      callback: true          # offer "press 1 to be called back", keeping the place in line
    timeout: voicemail
    no_agents: voicemail      # nobody logged in to the queue
    after: survey             # the agent hung up first: the caller goes on here
  voicemail:
    record:
      prompt: leave-message
      max_duration: 120s
      beep: true
      finish_on: "#"
      save_as: message
    next: goodbye
  goodbye:
    play: [goodbye]
    next: end
  after_hours:
    play: [closed]
    next: voicemail
  operator:
    queue:
      name: support
    timeout: voicemail
    no_agents: voicemail
  vip_queue:
    queue:
      name: billing
      priority: 10
    timeout: voicemail
    no_agents: voicemail
    after: survey
  survey:
    menu:
      prompt: rate-the-call
      options: {"1": thanks, "2": thanks, "3": thanks, "4": thanks, "5": thanks}
      timeout: 5s
      attempts: 1
      save_as: rating
    failed: end
  thanks:
    play: [thanks]
    next: end
  end:
    hangup: {}
"""

SHIPPED_PROMPTS = (
    "welcome",
    "main-menu",
    "invalid-option",
    "enter-account",
    "leave-message",
    "closed",
    "rate-the-call",
    "thanks",
)


def write_wav(path: Path, *, rate: int = 8000, channels: int = 1) -> None:
    """A short silent WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * channels * 80)


def make_hotline_dir(root: Path) -> Path:
    """An ivr_flows/ folder with the example and its shipped prompts."""
    flows = root / "ivr_flows"
    flows.mkdir()
    (flows / "hotline.yaml").write_text(HOTLINE)
    for name in SHIPPED_PROMPTS:
        write_wav(flows / "prompts" / "en" / f"{name}.wav")
    return flows


CONTEXT = CheckContext(known_queues={"billing", "support"}, stock_sounds={"en": {"goodbye"}})


def test_example_loads_with_every_step_kind_it_uses() -> None:
    flow = load_flow_text(HOTLINE, Path("ivr_flows/hotline.yaml")).flow
    kinds = {name: step.kind for name, step in flow.steps.items()}
    assert kinds["main_menu"] == "menu"
    assert kinds["office_hours"] == "hours"
    assert set(kinds.values()) == {
        "play", "hours", "menu", "gather", "http", "branch", "queue", "record", "hangup"
    }  # fmt: skip
    assert flow.steps["main_menu"].exits() == {
        "1": "billing",
        "2": "account",
        "0": "operator",
        "failed": "operator",
    }
    assert flow.steps["vip_check"].exits() == {
        "if customer.tier == 'vip'": "vip_queue",
        "else": "billing",
    }
    assert flow.steps["lookup"].exits() == {"next": "vip_check", "error": "billing"}
    menu = flow.steps["main_menu"]
    assert isinstance(menu, MenuStep)
    assert menu.menu.timeout == [5.0]
    assert menu.menu.attempts == 3
    assert [(p.kind, p.value) for p in menu.menu.prompt] == [("sound", "main-menu")]
    billing = flow.steps["billing"]
    assert isinstance(billing, QueueStep)
    assert billing.queue.max_wait == 600.0
    assert billing.queue.announce_position == 60.0
    assert billing.target("full") == "voicemail"  # full defaults to timeout
    assert flow.steps["operator"].target("after") is None  # hang up
    voicemail = flow.steps["voicemail"]
    assert isinstance(voicemail, RecordStep)
    assert voicemail.target("empty") == "goodbye"  # empty defaults to next
    hours = flow.steps["office_hours"]
    assert isinstance(hours, HoursStep)
    assert hours.hours == "office"
    assert hours.target("holiday") == "after_hours"  # holiday defaults to closed


def test_example_schedule_is_parsed() -> None:
    flow = load_flow_text(HOTLINE, Path("hotline.yaml")).flow
    office = flow.schedules["office"]
    assert office.weekly()[0] == [(8 * 60, 13 * 60), (14 * 60, 20 * 60)]
    assert office.weekly()[5] == [(9 * 60, 13 * 60)]
    assert office.weekly()[6] == []
    assert office.closed() == {"2026-12-25": [], "2026-12-26": []}
    assert str(office.zone()) == "Europe/Rome"


def test_example_checks_clean_with_its_prompts(tmp_path: Path) -> None:
    flows = make_hotline_dir(tmp_path)
    assert check_paths([flows], CONTEXT) == []
    out = io.StringIO()
    assert check_main([flows], CONTEXT, out=out) == 0
    assert out.getvalue() == ""


def test_example_without_its_prompts_fails_check(tmp_path: Path) -> None:
    flows = make_hotline_dir(tmp_path)
    (flows / "prompts" / "en" / "thanks.wav").unlink()
    out = io.StringIO()
    assert check_main([flows], CONTEXT, out=out) == 1
    assert out.getvalue() == (
        f"{flows}/hotline.yaml:102:12: error: prompt 'thanks' not found for language 'en': "
        f"no {flows}/prompts/en/thanks.* or {flows}/prompts/thanks.*, and not an Asterisk sound\n"
    )


def test_version_is_the_content_hash(tmp_path: Path) -> None:
    flows = make_hotline_dir(tmp_path)
    loaded = load_flow(flows / "hotline.yaml")
    again = load_flow_text(HOTLINE, flows / "hotline.yaml")
    assert loaded.version == again.version == loaded.flow.version
    assert len(loaded.version) == 12
    edited = load_flow_text(HOTLINE.replace("tier: standard", "tier: gold"), Path("hotline.yaml"))
    assert edited.version != loaded.version
