"""Scenario files: read YAML, check it against the schema and the rules, build a `Scenario`.

Every problem becomes one `ScenarioError` whose text is one line naming the file,
the field and what is wrong, e.g.::

    demo.yaml: workload.streams[0].rate: -1 is less than the minimum of 0

Built-in scenarios are YAML files shipped in the package's ``scenarios/`` folder.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from xenmca.pcpu.model import (
    MAX_INJECTION_SECONDS,
    MIN_INJECT_RATE,
    paced_seconds,
    paced_too_long,
)
from xenmca.testbed.fault_schedule import FaultSpecError, validate_fault
from xenmca.testbed.scenario_model import (
    Burst,
    Checks,
    ExpectedTransition,
    Fault,
    Policy,
    RawRecords,
    Scenario,
    SeverityMix,
    Storm,
    Stream,
    Throttle,
    Vcpu0Move,
)
from xenmca.vocab import ALLOW_BROKEN_RULES_ENV

SCHEMA_PATH = Path(__file__).with_name("scenario_schema.json")
SCENARIO_DIR = Path(__file__).with_name("scenarios")

MAX_RECORDS_PER_ENTRY = 10_000_000
"""Most records one stream or storm may ask for (all its pCPUs together)."""
MAX_RECORDS_TOTAL = 10_000_000
"""Most records the whole workload may ask for."""
MAX_STORM_COUNT_PER_PCPU = 1_000_000
"""Most records one storm may create on one pCPU (one paced InjectError)."""
DEFAULT_DRAIN_IDLE_S = 10.0
"""drain_idle_s when absent, unless twice the longest polling interval is longer."""
MAX_MESSAGE = 300

SEVERITY_NAMES = ("corrected", "recoverable", "fatal")
FAULT_KEYS = ("at_s", "kind", "target")


class ScenarioError(ValueError):
    """A scenario that cannot be used. str() is one line: ``FILE: FIELD: what is wrong``.

    ``ScenarioError(file, field, message)``; field "" when the problem is the
    whole file. ``ScenarioError(text)`` alone takes text as the whole line.
    """

    def __init__(self, file: str, field: str = "", message: str | None = None) -> None:
        if message is None:
            file, message = "", file
        self.file = file
        self.field = field
        self.message = _one_line(message)
        parts = [p for p in (file, field, self.message) if p]
        super().__init__(": ".join(parts))


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


# -- built-in scenarios ------------------------------------------------------------------


def builtin_names() -> list[str]:
    """Names of the shipped scenarios, sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def builtin_path(name: str) -> Path:
    """The file of built-in scenario name; ScenarioError naming the known ones if none."""
    path = SCENARIO_DIR / f"{name}.yaml"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name) or not path.is_file():
        raise ScenarioError(
            name, "", f"no built-in scenario {name!r} (known: {', '.join(builtin_names())})"
        )
    return path


def load_builtin(name: str) -> Scenario:
    """A built-in scenario by name (errors name the file as ``NAME.yaml``)."""
    return load_scenario(builtin_path(name), display_name=f"{name}.yaml")


# -- loading -----------------------------------------------------------------------------


def load_scenario(path: Path | str, *, display_name: str | None = None) -> Scenario:
    """Read, validate and convert a scenario file; ScenarioError on any problem."""
    path = Path(path)
    file = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError(file, "", f"cannot read the file: {reason}") from None
    return parse_scenario_text(text, file, base_dir=path.parent)


def parse_scenario_text(
    text: str, file: str = "<scenario>", *, base_dir: Path | None = None
) -> Scenario:
    """A scenario from YAML text; file names it in errors. Record files
    (workload.records[].file) are found relative to base_dir (default: the current
    directory)."""
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = exc.problem or exc.context or "cannot parse"
        raise ScenarioError(file, where, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(file, "", f"invalid YAML: {exc}") from None
    return parse_scenario(data, file, base_dir=base_dir)


def parse_scenario(
    data: Any, file: str = "<scenario>", *, base_dir: Path | None = None
) -> Scenario:
    """A scenario from already parsed data (a mapping as in the YAML file)."""
    if data is None:
        raise ScenarioError(file, "", "the file is empty; expected a scenario mapping")
    if not isinstance(data, Mapping):
        raise ScenarioError(
            file, "", f"expected a mapping of scenario fields, got {_TYPE_WORDS[_json_type(data)]}"
        )
    _check_schema(data, file)
    return _Builder(data, file, base_dir).build()


# -- YAML --------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads 1e3 as a number (YAML 1.2 style)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen[key] = loader.construct_object(value_node, deep=True)  # type: ignore[no-untyped-call]
    return seen


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


# -- schema ------------------------------------------------------------------------------


@functools.cache
def schema() -> dict[str, Any]:
    """The scenario JSON Schema (draft 2020-12)."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


def _check_schema(data: Mapping[str, Any], file: str) -> None:
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(data))
    if error is None:
        return
    raise ScenarioError(file, *_describe(error))


def field_path(parts: Iterable[str | int]) -> str:
    """``workload.streams[0].rate`` from ("workload", "streams", 0, "rate")."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean",
    "null": "null",
}
_FORM_VALIDATORS = frozenset({"type", "enum", "pattern", "const", "anyOf", "oneOf"})


def _describe(error: Any) -> tuple[str, str]:
    """(field, message) of a jsonschema error, in words a scenario author understands."""
    path = list(error.absolute_path)
    # A value of none of an anyOf's forms (not a mistake inside one of them, like an
    # unknown key in a mapping): say what the forms are.
    ancestor = error
    while ancestor is not None and error.validator in _FORM_VALIDATORS:
        if ancestor.validator == "anyOf" and len(error.absolute_path) == len(
            ancestor.absolute_path
        ):
            # The description's first sentence names the forms; the rest explains them.
            what = (ancestor.schema.get("description") or "one of the allowed forms").split(
                ". ", 1
            )[0]
            return field_path(path) or "(top level)", (
                f"{_short(error.instance)} is not valid here; expected {_lower_first(what)}"
            )
        ancestor = ancestor.parent
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        name = missing[0] if missing else "?"
        return field_path([*path, name]), "is required"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        name = str(extra[0]) if extra else "?"
        return field_path([*path, name]), f"unknown field (allowed: {', '.join(allowed)})"
    if error.validator == "type":
        expected = error.validator_value
        kinds: list[str] = expected if isinstance(expected, list) else [expected]
        names = [_TYPE_WORDS.get(kind, kind) for kind in kinds]
        return field_path(path) or "(top level)", (
            f"{_short(error.instance)} is {_TYPE_WORDS[_json_type(error.instance)]}, "
            f"expected {' or '.join(names)}"
        )
    if error.validator == "pattern" and path and path[-1] == "name":
        return "name", (
            f"{_short(error.instance)} must be lower-case letters, digits and dashes "
            "(starting with a letter or digit)"
        )
    return field_path(path) or "(top level)", error.message


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:].rstrip(".")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, Sequence):
        return "array"
    return "string"


# -- meaning -----------------------------------------------------------------------------


def parse_pcpu_set(value: Any, pcpus: int) -> tuple[int, ...]:
    """Resolve "all", an index, a list or "0-3,6" to sorted distinct indices < pcpus.

    Raises ValueError with a message (no field) on an index out of range, a
    reversed range or a repeated index.
    """
    if value == "all":
        return tuple(range(pcpus))
    indices: list[int] = []
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a pCPU set")
    if isinstance(value, int):
        indices = [value]
    elif isinstance(value, str):
        for part in value.split(","):
            low, _, high = part.strip().partition("-")
            first = int(low)
            last = int(high) if high else first
            if last < first:
                raise ValueError(f"range {part.strip()!r} runs backwards")
            indices.extend(range(first, last + 1))
    elif isinstance(value, Sequence):
        indices = [int(v) for v in value]
    else:
        raise ValueError(f"{value!r} is not a pCPU set")
    seen: set[int] = set()
    for index in indices:
        if index >= pcpus:
            raise ValueError(f"pCPU {index} does not exist (pcpus is {pcpus}: 0-{pcpus - 1})")
        if index in seen:
            raise ValueError(f"pCPU {index} is listed more than once")
        seen.add(index)
    return tuple(sorted(seen))


def _fmt(value: float) -> str:
    return f"{value:g}"


class _Builder:
    """Semantic checks of schema-valid data, and conversion to the dataclasses."""

    def __init__(self, data: Mapping[str, Any], file: str, base_dir: Path | None = None) -> None:
        self.data = data
        self.file = file
        self.base_dir = base_dir
        self.pcpus = int(data["pcpus"])
        self.duration = float(data["duration_s"])

    def fail(self, path: Sequence[str | int], message: str) -> ScenarioError:
        return ScenarioError(self.file, field_path(path), message)

    def build(self) -> Scenario:
        data = self.data
        vcpu0 = int(data.get("vcpu0_pcpu", 0))
        if vcpu0 >= self.pcpus:
            raise self.fail(
                ["vcpu0_pcpu"],
                f"pCPU {vcpu0} does not exist (pcpus is {self.pcpus}: 0-{self.pcpus - 1})",
            )
        dom0 = data.get("dom0", {})
        poll_min = float(dom0.get("cpe_poll_min_s", 0.05))
        poll_max = float(dom0.get("cpe_poll_max_s", 0.5))
        if poll_min > poll_max:
            raise self.fail(
                ["dom0", "cpe_poll_min_s"],
                f"{_fmt(poll_min)} is more than cpe_poll_max_s ({_fmt(poll_max)})",
            )
        workload = data.get("workload", {})
        streams = tuple(self.stream(i, s) for i, s in enumerate(workload.get("streams", [])))
        storms = tuple(self.storm(i, s) for i, s in enumerate(workload.get("storms", [])))
        bursts = tuple(self.burst(i, b) for i, b in enumerate(workload.get("bursts", [])))
        records = tuple(self.raw_records(i, r) for i, r in enumerate(workload.get("records", [])))
        total = (
            sum(_stream_records(s, self.duration) for s in streams)
            + sum(storm_count(s) * len(s.pcpus) for s in storms)
            + sum(b.count * len(b.pcpus) for b in bursts)
            + sum(len(r.raw_hex) for r in records)
        )
        if total > MAX_RECORDS_TOTAL:
            raise self.fail(
                ["workload"],
                f"asks for about {total:,.0f} records in all; at most {MAX_RECORDS_TOTAL:,}",
            )
        drain = float(data.get("drain_timeout_s", 60.0))
        throttle = self.throttle(data.get("throttle", {}))
        policy = self.policy(data.get("policy", {}))
        return Scenario(
            name=data["name"],
            description=str(data.get("description", "")),
            seed=int(data["seed"]),
            pcpus=self.pcpus,
            duration_s=self.duration,
            vcpu0_pcpu=vcpu0,
            vcpu0_moves=self.vcpu0_moves(data.get("vcpu0_moves", [])),
            pcpus_per_host=int(data.get("pcpus_per_host", 64)),
            capacity=int(data.get("capacity", 256)),
            durable_pcpus=bool(data.get("durable_pcpus", True)),
            throttle=throttle,
            cpe_poll_min_s=poll_min,
            cpe_poll_max_s=poll_max,
            drain_timeout_s=drain,
            streams=streams,
            storms=storms,
            bursts=bursts,
            faults=tuple(self.fault(i, f) for i, f in enumerate(data.get("faults", []))),
            network=str(data.get("network", "loopback")),
            settle_timeout_s=float(data.get("settle_timeout_s", 10.0)),
            checks=self.checks(data.get("checks", {})),
            broken_rule=self.broken_rule(data.get("broken_rule")),
            policy=policy,
            sal=str(data.get("sal", "extended")),
            salinfo_decode_delay_s=self.salinfo_decode_delay(dom0, policy),
            drain_idle_s=self.drain_idle(data.get("drain_idle_s"), throttle, poll_max),
            records=records,
        )

    def vcpu0_moves(self, raw: Sequence[Mapping[str, Any]]) -> tuple[Vcpu0Move, ...]:
        moves = []
        for index, item in enumerate(raw):
            at, pcpu = float(item["at_s"]), int(item["pcpu"])
            if pcpu >= self.pcpus:
                raise self.fail(
                    ["vcpu0_moves", index, "pcpu"],
                    f"pCPU {pcpu} does not exist (pcpus is {self.pcpus}: 0-{self.pcpus - 1})",
                )
            if at >= self.duration:
                raise self.fail(
                    ["vcpu0_moves", index, "at_s"],
                    f"{_fmt(at)} s is not within the workload (duration_s {_fmt(self.duration)})",
                )
            moves.append(Vcpu0Move(at_s=at, pcpu=pcpu))
        return tuple(sorted(moves, key=lambda m: m.at_s))

    def pcpu_set(self, path: list[str | int], value: Any) -> tuple[int, ...]:
        try:
            return parse_pcpu_set(value, self.pcpus)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    def window(self, path: list[str | int], start: float, duration: float | None) -> None:
        if start >= self.duration:
            raise self.fail(
                [*path, "start_s"],
                f"starts at {_fmt(start)} s, not before the end of the workload "
                f"(duration_s {_fmt(self.duration)})",
            )
        if duration is not None and start + duration > self.duration + 1e-9:
            raise self.fail(
                [*path, "duration_s"],
                f"ends at {_fmt(start + duration)} s, after the end of the workload "
                f"(duration_s {_fmt(self.duration)})",
            )

    def stream(self, index: int, raw: Mapping[str, Any]) -> Stream:
        path: list[str | int] = ["workload", "streams", index]
        pcpus = self.pcpu_set([*path, "pcpus"], raw.get("pcpus", "all"))
        severity = raw.get("severity", "corrected")
        if isinstance(severity, str):
            mix = SeverityMix(**{name: float(name == severity) for name in SEVERITY_NAMES})
        else:
            mix = SeverityMix(**{name: float(severity.get(name, 0.0)) for name in SEVERITY_NAMES})
            if mix.corrected + mix.recoverable + mix.fatal <= 0:
                raise self.fail([*path, "severity"], "the weights must have a positive sum")
        start = float(raw.get("start_s", 0.0))
        duration = raw.get("duration_s")
        duration = None if duration is None else float(duration)
        self.window(path, start, duration)
        stream = Stream(
            type=raw["type"],
            rate=float(raw["rate"]),
            pcpus=pcpus,
            severity=mix,
            start_s=start,
            duration_s=duration,
        )
        records = _stream_records(stream, self.duration)
        if records > MAX_RECORDS_PER_ENTRY:
            raise self.fail(
                [*path, "rate"],
                f"asks for about {records:,.0f} records (rate * duration * "
                f"{len(pcpus)} pCPUs); at most {MAX_RECORDS_PER_ENTRY:,}",
            )
        return stream

    def storm(self, index: int, raw: Mapping[str, Any]) -> Storm:
        path: list[str | int] = ["workload", "storms", index]
        pcpus = self.pcpu_set([*path, "pcpus"], raw["pcpus"])
        start = float(raw.get("start_s", 0.0))
        duration = float(raw["duration_s"])
        self.window(path, start, duration)
        storm = Storm(
            type=raw["type"],
            pcpus=pcpus,
            rate=float(raw["rate"]),
            start_s=start,
            duration_s=duration,
            severity=raw.get("severity", "corrected"),
        )
        # The pCPU's own limits on a paced injection, so that no storm passes here
        # and is refused at run time.
        if storm.rate < MIN_INJECT_RATE:
            raise self.fail(
                [*path, "rate"],
                f"{_fmt(storm.rate)} records/s is too slow for a paced injection; at least "
                f"{_fmt(MIN_INJECT_RATE)} (use a burst for a few records)",
            )
        count = storm_count(storm)
        if paced_too_long(count, storm.rate):
            raise self.fail(
                [*path, "rate"],
                f"{count:,} records at {_fmt(storm.rate)}/s take "
                f"{paced_seconds(count, storm.rate):,.0f} s; one paced injection lasts at most "
                f"{MAX_INJECTION_SECONDS:,.0f} s",
            )
        if count > MAX_STORM_COUNT_PER_PCPU:
            raise self.fail(
                [*path, "rate"],
                f"rate * duration_s is {count:,} records per pCPU; at most "
                f"{MAX_STORM_COUNT_PER_PCPU:,} (one paced injection)",
            )
        if count * len(pcpus) > MAX_RECORDS_PER_ENTRY:
            raise self.fail(
                [*path, "pcpus"],
                f"{count:,} records on each of {len(pcpus)} pCPUs is "
                f"{count * len(pcpus):,}; at most {MAX_RECORDS_PER_ENTRY:,}",
            )
        return storm

    def burst(self, index: int, raw: Mapping[str, Any]) -> Burst:
        path: list[str | int] = ["workload", "bursts", index]
        pcpus = self.pcpu_set([*path, "pcpus"], raw["pcpus"])
        at = float(raw["at_s"])
        if at >= self.duration:
            raise self.fail(
                [*path, "at_s"],
                f"{_fmt(at)} s is not before the end of the workload "
                f"(duration_s {_fmt(self.duration)})",
            )
        count = int(raw["count"])
        if count * len(pcpus) > MAX_RECORDS_PER_ENTRY:
            raise self.fail(
                [*path, "pcpus"],
                f"{count:,} records on each of {len(pcpus)} pCPUs is "
                f"{count * len(pcpus):,}; at most {MAX_RECORDS_PER_ENTRY:,}",
            )
        return Burst(
            type=raw["type"],
            pcpus=pcpus,
            count=count,
            at_s=at,
            severity=raw.get("severity", "corrected"),
        )

    def raw_records(self, index: int, raw: Mapping[str, Any]) -> RawRecords:
        """Real records from a file (relative to the scenario's folder) or hex, decoded
        strictly now, so that bad bytes stop the scenario before it runs."""
        from xenmca.ops.record_files import RecordFileError, read_records, records_in_hex

        path: list[str | int] = ["workload", "records", index]
        pcpu, at = int(raw["pcpu"]), float(raw["at_s"])
        if pcpu >= self.pcpus:
            raise self.fail(
                [*path, "pcpu"],
                f"pCPU {pcpu} does not exist (pcpus is {self.pcpus}: 0-{self.pcpus - 1})",
            )
        if at >= self.duration:
            raise self.fail(
                [*path, "at_s"],
                f"{_fmt(at)} s is not before the end of the workload "
                f"(duration_s {_fmt(self.duration)})",
            )
        given = [key for key in ("file", "hex") if key in raw]
        if len(given) != 1:
            raise self.fail(path, "give exactly one of file and hex (the record's bytes)")
        key = given[0]
        try:
            if key == "file":
                name = Path(raw["file"])
                found = read_records(name if self.base_dir is None else self.base_dir / name)
            else:
                found = records_in_hex(raw["hex"], source="")
        except RecordFileError as exc:
            raise self.fail([*path, key], str(exc)) from None
        if len(found) > MAX_RECORDS_PER_ENTRY:
            raise self.fail(
                [*path, key], f"holds {len(found):,} records; at most {MAX_RECORDS_PER_ENTRY:,}"
            )
        return RawRecords(
            pcpu=pcpu,
            at_s=at,
            type=raw["type"],
            raw_hex=tuple(r.raw.hex() for r in found),
            source=str(raw["file"]) if key == "file" else "hex",
        )

    def policy(self, raw: Mapping[str, Any]) -> Policy:
        from xenmca.xen.policy import PolicyError, check_choice

        options: dict[str, str] = {}
        for knob, choice in raw.get("options", {}).items():
            try:
                check_choice(knob, choice)
            except PolicyError as exc:
                message = str(exc).removeprefix(f"{knob}: ")
                raise self.fail(["policy", "options", knob], message) from None
            options[knob] = choice
        return Policy(
            xen=str(raw.get("xen", "xenmca")), dom0=str(raw.get("dom0", "xenmca")), options=options
        )

    def salinfo_decode_delay(self, dom0: Mapping[str, Any], policy: Policy) -> float | None:
        delay = dom0.get("salinfo_decode_delay_s")
        if delay is None:
            return None
        if policy.dom0 != "linux-salinfo":
            raise self.fail(
                ["dom0", "salinfo_decode_delay_s"],
                f"applies only to policy.dom0 linux-salinfo (policy.dom0 is {policy.dom0})",
            )
        return float(delay)

    def drain_idle(self, raw: Any, throttle: Throttle, dom0_poll_max: float) -> float:
        """drain_idle_s, which must outlast every polling interval.

        A record waiting for the next poll changes no count, so a shorter idle
        window would call it stranded while it is merely waiting.
        """
        from xenmca.testbed.poll_intervals import longest_poll_interval

        name, longest = longest_poll_interval(throttle, dom0_poll_max)
        if raw is None:
            return max(DEFAULT_DRAIN_IDLE_S, 2 * longest)
        idle = float(raw)
        if idle <= longest:
            raise self.fail(
                ["drain_idle_s"],
                f"{_fmt(idle)} s is not longer than the longest polling interval "
                f"({name} {_fmt(longest)} s): records waiting for a poll would be "
                "called stranded",
            )
        return idle

    def throttle(self, raw: Mapping[str, Any]) -> Throttle:
        from xenmca.xen.throttle_settings import PRESETS, ThrottleSettingsError, load_settings

        preset = raw.get("preset", "fast")
        if preset not in PRESETS:
            raise self.fail(
                ["throttle", "preset"],
                f"unknown preset {preset!r} (known: {', '.join(PRESETS)})",
            )
        settings = dict(raw.get("settings", {}))
        try:
            load_settings(preset, None, settings)
        except ThrottleSettingsError as exc:
            message = str(exc)
            named = next((k for k in settings if message.startswith(k)), None)
            path = ["throttle", "settings", named] if named else ["throttle", "settings"]
            raise self.fail(path, message) from None
        return Throttle(preset=preset, settings=settings)

    def fault(self, index: int, raw: Mapping[str, Any]) -> Fault:
        at = float(raw["at_s"])
        if at >= self.duration:
            raise self.fail(
                ["faults", index, "at_s"],
                f"{_fmt(at)} s is not within the workload (duration_s {_fmt(self.duration)}); "
                "faults still active when it ends are healed before the drain",
            )
        params = {k: v for k, v in raw.items() if k not in FAULT_KEYS}
        fault = Fault(at_s=at, kind=str(raw["kind"]), target=str(raw["target"]), params=params)
        try:
            validate_fault(
                fault,
                self.pcpus,
                int(self.data.get("pcpus_per_host", 64)),
                str(self.data.get("network", "loopback")),
            )
        except FaultSpecError as exc:
            raise self.fail(["faults", index, exc.field], str(exc)) from None
        return fault

    def checks(self, raw: Mapping[str, Any]) -> Checks:
        transitions = []
        for index, item in enumerate(raw.get("expect_transitions", [])):
            pcpu = int(item["pcpu"])
            if pcpu >= self.pcpus:
                raise self.fail(
                    ["checks", "expect_transitions", index, "pcpu"],
                    f"pCPU {pcpu} does not exist (pcpus is {self.pcpus}: 0-{self.pcpus - 1})",
                )
            transitions.append(ExpectedTransition(pcpu=pcpu, type=item["type"], mode=item["mode"]))
        p99 = raw.get("latency_p99_ms")
        latency_max = raw.get("latency_max_ms")
        for quantile in ("p99", "max"):
            given = [f"latency_{quantile}_{unit}" for unit in ("ms", "floors")]
            if all(raw.get(name) is not None for name in given):
                raise self.fail(
                    ["checks", given[1]],
                    f"give {given[0]} (absolute) or {given[1]} (relative to this machine), "
                    "not both",
                )
        fairness = raw.get("fairness", True)
        bound = int(fairness["max_overtaken"]) if isinstance(fairness, Mapping) else None
        return Checks(
            max_lost=int(raw.get("lost", 0)),
            max_duplicates=int(raw.get("duplicates", 0)),
            max_cleared_before_logged=int(raw.get("cleared_before_logged", 0)),
            latency_p99_ms=None if p99 is None else float(p99),
            latency_max_ms=None if latency_max is None else float(latency_max),
            latency_p99_floors=_optional_float(raw.get("latency_p99_floors")),
            latency_max_floors=_optional_float(raw.get("latency_max_floors")),
            expect_transitions=tuple(transitions),
            all_lines_back_to_interrupt=bool(raw.get("all_lines_back_to_interrupt", True)),
            max_stranded=int(raw.get("stranded", 0)),
            fairness=fairness is not False,
            max_overtaken=bound,
            isolation=bool(raw.get("isolation", True)),
            local_calls=bool(raw.get("local_calls", True)),
        )

    def broken_rule(self, rule: str | None) -> str | None:
        if rule is None:
            return None
        if os.environ.get(ALLOW_BROKEN_RULES_ENV) != "1":
            raise self.fail(
                ["broken_rule"],
                f"{rule!r} is a test-only setting; it is accepted only with "
                f"{ALLOW_BROKEN_RULES_ENV}=1 in the environment",
            )
        from xenmca.xen.coordinator import BROKEN_RULES

        if rule not in BROKEN_RULES:
            raise self.fail(
                ["broken_rule"], f"unknown rule {rule!r} (known: {', '.join(BROKEN_RULES)})"
            )
        return rule


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def storm_count(storm: Storm) -> int:
    """Records a storm creates on each of its pCPUs: rate * duration_s, at least 1."""
    return max(1, round(storm.rate * storm.duration_s))


def _stream_records(stream: Stream, scenario_duration: float) -> float:
    """Expected records of a stream over all its pCPUs."""
    end = stream.start_s + stream.duration_s if stream.duration_s is not None else scenario_duration
    value = stream.rate * max(0.0, end - stream.start_s) * len(stream.pcpus)
    return value if math.isfinite(value) else math.inf
