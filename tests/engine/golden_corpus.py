"""The golden corpus: event scripts, and the exact command streams the engine gives for them.

Each script is a scenario of `test_properties` (two queues with random
strategies and options, agents with skills and enrolment options) and a list
of actions drawn from its strategies, with a few more (operator changes the
property tests leave out: unenrolments, removed and re-added extensions and
queues, a route to an extension, an inactive queue, other timeouts). The
scripts are drawn once by Hypothesis with a fixed seed and stored as data, so
that a replay depends neither on Hypothesis's version nor on its database.

After each action the corpus records what the engine gave: the commands (each
as `repr` of its frozen dataclass), `next_deadline()`, what `take_changes()`
handed the store and what `take_snapshots()` returned (both sorted, as they
are built from sets). `test_golden` replays every script and compares.

Run from the repository root, with the sources on the path:

    python -m tests.engine.golden_corpus record --force    # re-record the streams
    python -m tests.engine.golden_corpus generate --force  # draw new scripts, then record
    python -m tests.engine.golden_corpus coverage          # what the scripts exercise
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import gzip
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as with_seed
from hypothesis import strategies as st

from ringmaster.engine import events as ev
from ringmaster.engine.commands import Command
from ringmaster.engine.model import (
    AgentCondition,
    DeviceState,
    EnrolmentOptions,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    PenaltyRule,
    Presence,
    QueueConfig,
    QueueId,
    QueueStatus,
    QueueTarget,
    RingFailure,
    SkillRule,
)
from ringmaster.engine.records import StateChanges
from ringmaster.engine.strategies import strategy_names

from . import test_properties as props
from .sim import PretendStore, Sim, T

GOLDEN = Path(__file__).parent / "golden" / "scripts.jsonl.gz"
#: How many scripts `generate` draws with Hypothesis, how many busy ones it
#: adds (`busy_script`), and the seed of both.
SCRIPTS = 300
BUSY_SCRIPTS = 110
#: Busy scripts whose clock moves a second at a time, numbered after the others.
TICK_SCRIPTS = 40
#: Busy scripts whose queues may have `ring_in_use` (added with that option, after
#: the engine's split: the scripts before them are unchanged).
RING_IN_USE_SCRIPTS = 40
BUSY_STEPS = (1.0, 2.5, 5.0, 10.0, 20.0)
TICK_STEPS = (1.0,)
SEED = 20261202
FORMAT = 1

# --- the scripts ------------------------------------------------------------------------------

#: Options `test_properties` does not draw (its `Sim` fixes `timeout`), set by `set_queue`.
more_queue_options = st.fixed_dictionaries(
    {},
    optional={
        "timeout": st.sampled_from([5, 10, 20]),
        "service_level": st.sampled_from([0, 10, 30]),
        "status": st.sampled_from([QueueStatus.ACTIVE, QueueStatus.INACTIVE]),
    },
)
golden_queue_options = st.tuples(props.queue_options, more_queue_options).map(
    lambda both: {**both[0], **both[1]}
)
golden_scenarios = st.builds(
    props.Scenario,
    strategies=st.tuples(props.ALL_STRATEGIES, props.ALL_STRATEGIES),
    options=st.tuples(props.queue_options, props.queue_options),
    skills=st.tuples(*[props.skill_maps] * props.AGENTS),
    enrolments=st.lists(
        st.tuples(st.sampled_from([1, 2]), st.integers(1, props.AGENTS), props.enrolment_options),
        max_size=4,
    ).map(tuple),
)
more_events = st.one_of(
    st.tuples(
        st.just("arrive"),
        st.sampled_from(props.CALLS),
        st.sampled_from(["+200", "+100"]),  # "+200" routes to extension 101
        st.integers(0, 9),
        st.just({}),
    ),
    st.tuples(st.just("set_queue"), st.sampled_from([1, 2]), golden_queue_options),
    st.tuples(st.just("unenrol"), st.sampled_from([1, 2]), st.integers(1, props.AGENTS)),
    st.tuples(st.just("remove_extension"), st.integers(1, props.AGENTS)),
    st.tuples(st.just("add_extension"), st.integers(1, props.AGENTS), props.skill_maps),
    st.tuples(st.just("remove_queue"), st.sampled_from([1, 2])),
    st.tuples(
        st.just("add_queue"), st.sampled_from([1, 2]), props.ALL_STRATEGIES, golden_queue_options
    ),
    st.tuples(st.just("remove_route"), st.sampled_from(["+100", "+200", "+300"])),
)
#: One action in eight is one of `more_events`: removing queues and routes too often
#: would leave little to distribute.
golden_actions = st.integers(0, 7).flatmap(lambda n: more_events if n == 0 else props.actions)

Action = tuple[Any, ...]
Script = tuple[props.Scenario, list[Action]]


def draw_scripts(count: int = SCRIPTS, seed: int = SEED) -> list[Script]:
    """Draw `count` scripts with Hypothesis, the same ones for the same seed and version."""
    drawn: list[Script] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=False,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(scenario=golden_scenarios, script=st.lists(golden_actions, min_size=20, max_size=60))
    def collect(scenario: props.Scenario, script: list[Action]) -> None:
        drawn.append((scenario, script))

    with_seed(seed)(collect)()
    return drawn


#: Options of the busy scripts: milder than the property tests' (fewer empty-queue
#: rules), so that calls get rung, answered and completed, and ranks move.
BUSY_QUEUE_OPTIONS: dict[str, list[Any]] = {
    "retry": [0, 5],
    "wrapup_time": [0, 10],
    "max_len": [0, 3],
    "max_wait": [0, 60],
    "overflow": [HangupTarget(), QueueTarget(QueueId(2)), ExtensionTarget(ExtensionId(4))],
    "join_empty": [frozenset({AgentCondition.PAUSED, AgentCondition.LOGGED_OUT})],
    "leave_when_empty": [frozenset({AgentCondition.LOGGED_OUT})],
    "weight": [0, 5],
    "announce_frequency": [0, 15],
    "ring_progressive_delay": [3, 10],
    "penalty_rules": [(PenaltyRule(0, 0), PenaltyRule(20, 2))],
    "skill_rules": [(SkillRule(10, 1),)],
}
#: A `retry` longer than the ring `timeout` (10 s): a ring started during a pause
#: may time out just as the pause ends.
TICK_QUEUE_OPTIONS = {**BUSY_QUEUE_OPTIONS, "retry": [0, 5, 12]}
RING_IN_USE_QUEUE_OPTIONS = {**BUSY_QUEUE_OPTIONS, "ring_in_use": [False, True]}
BUSY_ENROLMENT_OPTIONS: dict[str, list[Any]] = {
    "penalty": [0, 1, 2],
    "position": [None, 0, 3],
    "wrapup_time": [None, 0, 15],
    "max_no_answer": [0, 2],
    "busy_delay": [0, 7],
    "reject_delay": [0, 7],
    "no_answer_delay": [0, 7],
}


def busy_script(  # noqa: PLR0912 - a branch per action
    number: int,
    seed: int = SEED,
    *,
    steps: tuple[float, ...] = BUSY_STEPS,
    queue_options: dict[str, list[Any]] | None = None,
) -> Script:
    """A script of a busy centre, from a seeded generator: many calls rung, answered, ended.

    Queue 1 takes the registry's strategies in turn, so each is in every tenth script.
    The clock moves by one of `steps` at a time: whole seconds only (`TICK_STEPS`)
    make deadlines fall due together, which tests the order they are handled in.
    """
    queue_table = queue_options or BUSY_QUEUE_OPTIONS
    rng = random.Random(seed * 1000 + number)
    names = sorted(strategy_names())

    def pick(table: dict[str, list[Any]], chance: float) -> dict[str, Any]:
        return {k: rng.choice(v) for k, v in table.items() if rng.random() < chance}

    scenario = props.Scenario(
        strategies=(names[number % len(names)], rng.choice(names)),
        options=(pick(queue_table, 0.25), pick(queue_table, 0.25)),
        skills=tuple(
            {"spanish": rng.randint(1, 10)} if rng.random() < 0.5 else {}
            for _ in range(props.AGENTS)
        ),
        enrolments=tuple(
            (rng.choice([1, 2]), rng.randint(1, props.AGENTS), pick(BUSY_ENROLMENT_OPTIONS, 0.4))
            for _ in range(rng.randint(0, 4))
        ),
    )
    calls: list[str] = []
    script: list[Action] = []
    extensions = props.EXTENSIONS
    for _ in range(rng.randint(60, 120)):
        roll = rng.random()
        known = rng.choice(calls) if calls else "b0"
        if roll < 0.25:
            calls.append(f"b{len(calls)}")
            did = rng.choice(["+100", "+100", "+101", "+300", "+200"])
            skills = {"spanish": rng.randint(1, 6)} if rng.random() < 0.1 else {}
            script.append(("arrive", calls[-1], did, rng.randint(0, 3), skills))
        elif roll < 0.45:
            script.append(("answer_ringing", known))
        elif roll < 0.57:
            script.append(("hangup", known))
        elif roll < 0.77:
            script.append(("advance", rng.choice(steps)))
        elif roll < 0.82:
            script.append(("fail_ringing", known, rng.choice(list(RingFailure))))
        elif roll < 0.87:
            presence = rng.choice([Presence.AVAILABLE, Presence.AVAILABLE, Presence.PAUSED])
            script.append(("presence", rng.choice(extensions), presence))
        elif roll < 0.91:
            state = rng.choice([DeviceState.IDLE, DeviceState.IDLE, *DeviceState])
            script.append(("device", rng.choice(extensions), state))
        elif roll < 0.93:
            script.append(("callback", known, "5551"))
        elif roll < 0.95:
            script.append(("set_queue", rng.choice([1, 2]), pick(queue_table, 0.2)))
        elif roll < 0.97:
            extension = rng.randint(1, props.AGENTS)
            options = pick(BUSY_ENROLMENT_OPTIONS, 0.4)
            script.append(("enrol", rng.choice([1, 2]), extension, options))
        elif roll < 0.985:
            script.append(("restart", rng.choice([0.0, 3.0])))
        elif roll < 0.993:
            script.append(("fail_echo", known, RingFailure.NO_ANSWER))
        else:
            script.append(("answer_echo", known, rng.randint(0, 3)))
    return scenario, script


def build(scenario: props.Scenario) -> Sim:
    sim = scenario.build()
    sim.route("+200", extension=1)
    return sim


def add_queue(sim: Sim, queue_id: int, strategy: str, options: dict[str, Any]) -> list[Command]:
    # `add_queue` names the timeout, the retry and the wrap-up itself.
    named = {k: options[k] for k in ("timeout", "retry", "wrapup_time") if k in options}
    rest = {k: v for k, v in options.items() if k not in named}
    return sim.add_queue(
        queue_id, strategy, enrolled=range(queue_id, props.AGENTS + 1), **named, **rest
    )


PLAYERS: dict[str, Callable[[Sim, list[Any]], list[Command]]] = {
    **props.PLAYERS,
    "unenrol": lambda sim, a: sim.configure(ev.AgentUnenrolled(QueueId(a[0]), ExtensionId(a[1]))),
    "remove_extension": lambda sim, a: sim.configure(ev.ExtensionRemoved(ExtensionId(a[0]))),
    "add_extension": lambda sim, a: sim.add_extension(a[0], skills=a[1]),
    "remove_queue": lambda sim, a: sim.configure(ev.QueueRemoved(QueueId(a[0]))),
    "add_queue": lambda sim, a: add_queue(sim, a[0], a[1], a[2]),
    "remove_route": lambda sim, a: sim.configure(ev.DidRouteRemoved(T, a[0])),
}


def play(sim: Sim, action: Action) -> list[Command]:
    kind, *args = action
    if kind == "set_queue" and sim.engine.queue(QueueId(args[0])) is None:
        return []  # removed by an earlier action
    return PLAYERS[kind](sim, args)


def ending(script: list[Action]) -> list[Action]:
    """What closes every script: every call hangs up, and ended calls are forgotten."""
    calls = sorted({a[1] for a in script if a[0] == "arrive"} | set(props.CALLS))
    return [*(("hangup", call_id) for call_id in calls), ("advance", 130.0)]


# --- the streams ------------------------------------------------------------------------------


class RecordingStore(PretendStore):
    """A pretend store that also keeps, in a stable order, every change it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[str] = []

    def apply(self, changes: StateChanges) -> None:
        super().apply(changes)
        live = changes.live
        for kind, items in (
            ("call", live.calls),
            ("agent", live.agents),
            ("queue", live.queues),
            ("stats", live.agent_stats),
            ("-call", changes.calls_removed),
            ("-agent", changes.agents_removed),
            ("-queue", changes.queues_removed),
            ("-stats", changes.agent_stats_removed),
        ):
            self.handed += sorted(f"{kind} {item!r}" for item in items)


def replay(scenario: props.Scenario, script: list[Action]) -> list[list[Any]]:
    """Play a script; per action: [commands, next deadline, changes stored, snapshots]."""
    sim = build(scenario)
    store = RecordingStore()
    store.config = sim.store.config
    sim.store = store
    sim.engine.take_changes()  # the build's own changes: the scenario, not the script
    sim.engine.take_snapshots(sim.now)
    steps: list[list[Any]] = []
    for action in [*script, *ending(script)]:
        store.handed = []
        out = play(sim, action)
        snapshots = sorted(repr(s) for s in sim.engine.take_snapshots(sim.now))
        deadline = sim.engine.next_deadline()
        steps.append([[repr(c) for c in out], deadline, store.handed, snapshots])
    return steps


# --- storing scripts as JSON ------------------------------------------------------------------

_ENUMS: dict[str, type[enum.Enum]] = {
    e.__name__: e for e in (AgentCondition, DeviceState, Presence, QueueStatus, RingFailure)
}
_RECORDS: dict[str, type[Any]] = {
    t.__name__: t for t in (ExtensionTarget, HangupTarget, PenaltyRule, QueueTarget, SkillRule)
}


def encode(value: Any) -> Any:  # noqa: PLR0911
    """A JSON value for a script's piece (tagged where JSON has no such type)."""
    if isinstance(value, enum.Enum):
        return {"enum": type(value).__name__, "value": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [encode(getattr(value, f.name)) for f in dataclasses.fields(value)]
        return {"record": type(value).__name__, "fields": fields}
    if isinstance(value, frozenset):
        return {"frozenset": sorted((encode(v) for v in value), key=json.dumps)}
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"dict": [[k, encode(v)] for k, v in value.items()]}
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"cannot store {value!r} in a golden script")


def decode(value: Any) -> Any:  # noqa: PLR0911
    """The inverse of `encode`."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "enum" in value:
        return _ENUMS[value["enum"]](value["value"])
    if "record" in value:
        if value["record"] == "Scenario":
            return props.Scenario(*(decode(v) for v in value["fields"]))
        return _RECORDS[value["record"]](*(decode(v) for v in value["fields"]))
    if "frozenset" in value:
        return frozenset(decode(v) for v in value["frozenset"])
    if "tuple" in value:
        return tuple(decode(v) for v in value["tuple"])
    return {k: decode(v) for k, v in value["dict"]}


def line(number: int, scenario: props.Scenario, script: list[Action]) -> str:
    """One script and its stream, as one line of the golden file."""
    entry = {
        "script": number,
        "scenario": encode(scenario),
        "actions": encode(script),
        "steps": replay(scenario, script),
    }
    return json.dumps(entry, separators=(",", ":"))


def read_lines(path: Path = GOLDEN) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        header, *lines = f.read().splitlines()
    if json.loads(header)["format"] != FORMAT:
        raise ValueError(f"{path}: not a golden corpus of format {FORMAT}")
    return lines


def scripts_of(lines: list[str]) -> Iterator[tuple[int, props.Scenario, list[Action]]]:
    for text in lines:
        entry = json.loads(text)
        script = [tuple(a) for a in decode(entry["actions"])]
        yield entry["script"], decode(entry["scenario"]), script


def write(lines: list[str], path: Path = GOLDEN) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"format": FORMAT, "scripts": len(lines), "seed": SEED})
    # mtime=0: the same streams make the same bytes, so git sees no change.
    with (
        path.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f,
    ):
        f.write("\n".join([header, *lines, ""]).encode())


# --- coverage -------------------------------------------------------------------------------

#: Fields that name a queue rather than change what it does.
NAMING_FIELDS = {"queue_id", "tenant_id", "name", "queue_number", "strategy"}


def coverage(scripts: list[Script]) -> dict[str, Counter[str]]:
    """What the scripts exercise: strategies, options set off their default, actions."""
    strategies: Counter[str] = Counter()
    queue_options: Counter[str] = Counter()
    enrolment_options: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    queue_defaults = {f.name: f.default for f in dataclasses.fields(QueueConfig)}
    enrol_defaults = {f.name: f.default for f in dataclasses.fields(EnrolmentOptions)}

    def queue(options: dict[str, Any]) -> None:
        queue_options.update(k for k, v in options.items() if v != queue_defaults[k])

    def enrolment(options: dict[str, Any]) -> None:
        enrolment_options.update(k for k, v in options.items() if v != enrol_defaults[k])

    for scenario, script in scripts:
        strategies.update(scenario.strategies)
        for options in scenario.options:
            queue(options)
        for _, _, options in scenario.enrolments:
            enrolment(options)
        for action in script:
            actions[action[0]] += 1
            if action[0] == "set_queue":
                queue(action[2])
            elif action[0] == "add_queue":
                strategies[action[2]] += 1
                queue(action[3])
            elif action[0] == "enrol":
                enrolment(action[3])
    return {
        "strategies": strategies,
        "queue options": queue_options,
        "enrolment options": enrolment_options,
        "actions": actions,
    }


def missing(covered: dict[str, Counter[str]]) -> dict[str, set[str]]:
    """What the scripts leave out: strategies of the registry, options of the declarations."""
    queue_fields = {f.name for f in dataclasses.fields(QueueConfig)} - NAMING_FIELDS
    enrol_fields = {f.name for f in dataclasses.fields(EnrolmentOptions)}
    return {
        "strategies": set(strategy_names()) - set(covered["strategies"]),
        "queue options": queue_fields - set(covered["queue options"]),
        "enrolment options": enrol_fields - set(covered["enrolment options"]),
        "actions": set(PLAYERS) - set(covered["actions"]),
    }


# --- the command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.engine.golden_corpus")
    parser.add_argument("what", choices=["record", "generate", "coverage"])
    parser.add_argument("--force", action="store_true", help="overwrite the golden file")
    args = parser.parse_args(argv)
    if args.what == "coverage":
        scripts = [(s, a) for _, s, a in scripts_of(read_lines())]
        covered = coverage(scripts)
        for name, counts in covered.items():
            print(f"{name}: {dict(sorted(counts.items()))}")
        print(f"missing: {missing(covered)}")
        return 0
    if GOLDEN.exists() and not args.force:
        print(f"{GOLDEN} exists: pass --force to overwrite it", file=sys.stderr)
        return 2
    if args.what == "generate":
        scripts = [
            *draw_scripts(),
            *(busy_script(n) for n in range(BUSY_SCRIPTS)),
            *(
                busy_script(n, steps=TICK_STEPS, queue_options=TICK_QUEUE_OPTIONS)
                for n in range(BUSY_SCRIPTS, BUSY_SCRIPTS + TICK_SCRIPTS)
            ),
            *(
                busy_script(n, queue_options=RING_IN_USE_QUEUE_OPTIONS)
                for n in range(
                    BUSY_SCRIPTS + TICK_SCRIPTS, BUSY_SCRIPTS + TICK_SCRIPTS + RING_IN_USE_SCRIPTS
                )
            ),
        ]
    else:
        scripts = [(s, a) for _, s, a in scripts_of(read_lines())]
    lines = [line(number, scenario, script) for number, (scenario, script) in enumerate(scripts)]
    write(lines)
    steps = sum(len(json.loads(text)["steps"]) for text in lines)
    print(f"{GOLDEN}: {len(lines)} scripts, {steps} steps, {GOLDEN.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
