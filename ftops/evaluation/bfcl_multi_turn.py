"""BFCL's multi-turn categories: a model's calls run turn by turn against the back-end classes
``bfcl-eval`` ships, then BFCL's state-based and response-based checks (no Django imports).

``bfcl-eval`` is needed here (its simulated file system, trading bot, travel API ...), and is
imported lazily: without it the functions raise ``BfclEvalMissing`` saying how to install it.

The checks follow ``bfcl_eval/eval_checker/multi_turn_eval/multi_turn_checker.py``:

- a result that is not a list fails (``multi_turn:inference_error``), one whose number of turns
  differs from the ground truth's fails (``multi_turn:force_terminated``);
- each turn, the model's steps run in order on the model's instances (kept across turns), the
  ground truth's calls on a second set of instances; empty steps are skipped;
- a turn whose ground truth calls something needs at least one model step
  (``multi_turn:empty_turn_model_response``);
- after such a turn every instance's public attributes must equal the ground truth's
  (``multi_turn:instance_state_mismatch``), and every result the ground truth's calls returned
  this turn must be among the results the model's calls returned so far, in any order, each
  used once (``multi_turn:execution_response_mismatch``).

Unlike BFCL, calls are never built into source text and ``eval``-ed: a call is a method name
looked up among the public methods of the entry's classes, and its arguments are passed as
values. A name that is no such method returns BFCL's error text for an undefined name.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftops.core.adapters import RECORD_ID_KEY, ModelAdapter, ModelOutput, ReplayAdapter
from ftops.core.checker import PASS, Verdict, fail
from ftops.core.harness import EvalReport, ProgressCallback, RecordResult, evaluate_records
from ftops.core.records import MULTI_TURN, Record
from ftops.core.scoring import RecordScore, functions_of, record_category
from ftops.evaluation.bfcl_official import backend_class, stateless_classes

MULTI_TURN_CATEGORIES = ("multi_turn_base",)
# BFCL refuses these names whatever class defines them.
_REFUSED = frozenset({"kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run"})
_NAME = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def source(self) -> str:
        """The call as Python source, the way BFCL's handlers write it."""
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{self.name}({','.join(parts)})"


class CallSyntaxError(ValueError):
    """A call string that is not ``name(literal, key=literal, ...)``."""


def parse_call(text: str) -> Call:
    """``"mv(source='a', destination='b')"`` -> Call; arguments must be Python literals."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise CallSyntaxError(f"not a call: {text!r}") from exc
    node = tree.body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise CallSyntaxError(f"not a plain function call: {text!r}")
    try:
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = tuple((str(k.arg), ast.literal_eval(k.value)) for k in node.keywords if k.arg is not None)
    except ValueError as exc:
        raise CallSyntaxError(f"arguments are not literals: {text!r}") from exc
    return Call(node.func.id, args, kwargs)


def to_calls(step: Any) -> list[Call]:
    """One model step: a list of ``{name: {arg: value}}`` dicts and/or call strings."""
    if isinstance(step, str | dict):
        step = [step]
    if not isinstance(step, list):
        raise CallSyntaxError("a step is a list of calls")
    calls: list[Call] = []
    for item in step:
        if isinstance(item, str):
            if item.strip():
                calls.append(parse_call(item))
        elif isinstance(item, dict):
            for name, args in item.items():
                if not isinstance(args, dict):
                    raise CallSyntaxError(f"arguments of {name!r} are not an object")
                calls.append(Call(str(name), (), tuple((str(k), v) for k, v in args.items())))
        else:
            raise CallSyntaxError("a call is a {name: {arg: value}} object or a string")
    return calls


class Backends:
    """One set of back-end instances for an entry, loaded with its initial configuration."""

    def __init__(self, involved_classes: Sequence[str], initial_config: Mapping[str, Any],
                 long_context: bool = False) -> None:
        stateless = stateless_classes()
        self.instances: dict[str, Any] = {}
        self.methods: dict[str, Callable[..., Any]] = {}
        for class_name in involved_classes:
            instance = backend_class(class_name)()
            if class_name not in stateless:
                instance._load_scenario(copy.deepcopy(dict(initial_config.get(class_name, {}))),
                                        long_context=long_context)
            self.instances[class_name] = instance
            for name in dir(instance):
                if name.startswith("_"):
                    continue
                member = getattr(instance, name)
                if callable(member) and hasattr(member, "__self__"):
                    self.methods[name] = member  # a later class wins, as in BFCL's name mapping

    def execute(self, call: Call) -> str:
        """The call's result as BFCL records it: strings as they are, dicts as JSON, errors as text."""
        if not _NAME.match(call.name):
            return f"Error during execution: invalid syntax in {call.name!r}"
        if call.name in _REFUSED:
            return f"Error during execution: Function call {call.name} is not allowed."
        method = self.methods.get(call.name)
        if method is None:
            return f"Error during execution: name '{call.name}' is not defined"
        try:
            # Copies: back-ends keep argument lists in their state and later calls change them in
            # place, which must not rewrite the recorded call (BFCL evaluates fresh literals).
            result = method(*copy.deepcopy(call.args), **copy.deepcopy(dict(call.kwargs)))
        except Exception as exc:  # a wrong call is part of what is scored
            return f"Error during execution: {exc}"
        if type(result) is str:
            return result
        if type(result) is dict:
            try:
                return json.dumps(result)
            except (TypeError, ValueError):
                return str(result)
        return str(result)

    def state(self, class_name: str) -> dict[str, Any]:
        return {k: v for k, v in vars(self.instances[class_name]).items() if not k.startswith("_")}


def _is_empty_step(step: Any) -> bool:
    # BFCL's is_empty_execute_response: [] and [""] / [{}] are no call.
    if not isinstance(step, list | str | dict):
        return True
    if isinstance(step, list):
        return len(step) == 0 or (len(step) == 1 and not step[0])
    return not step


def _unordered_missing(wanted: Sequence[str], have: Sequence[str]) -> list[str]:
    pool = list(have)
    missing: list[str] = []
    for item in wanted:
        try:
            pool.remove(item)
        except ValueError:
            missing.append(item)
    return missing


def check_multi_turn(
    result: Any,
    ground_truth: Sequence[Sequence[str]],
    involved_classes: Sequence[str],
    initial_config: Mapping[str, Any],
    *,
    long_context: bool = False,
) -> Verdict:
    """Score one multi-turn entry. ``result``: one list per turn, holding the model's steps
    (each a list of calls: ``{name: {arg: value}}`` objects or call strings)."""
    if not isinstance(result, list):
        return fail("multi_turn:inference_error", "the result is not a list of turns")
    if len(result) != len(ground_truth):
        return fail("multi_turn:force_terminated",
                    f"{len(result)} turn(s) in the result, {len(ground_truth)} in the ground truth")
    model = Backends(involved_classes, initial_config, long_context)
    truth = Backends(involved_classes, initial_config, long_context)
    model_results: list[str] = []
    for turn, (steps, truth_calls) in enumerate(zip(result, ground_truth, strict=True)):
        decoded: list[list[Call]] = []
        for step in steps if isinstance(steps, list) else []:
            if _is_empty_step(step):
                continue
            try:
                calls = to_calls(step)
            except CallSyntaxError:
                continue  # BFCL ignores steps it cannot decode (the model was chatting)
            if calls:
                decoded.append(calls)
        for calls in decoded:
            model_results.extend(model.execute(call) for call in calls)
        truth_results = [truth.execute(parse_call(text)) for text in truth_calls]
        if not truth_calls:
            continue
        if not decoded:
            return fail("multi_turn:empty_turn_model_response", f"no call in turn {turn}")
        for class_name in truth.instances:
            wanted, got = truth.state(class_name), model.state(class_name)
            differences = sorted(k for k in wanted if got.get(k) != wanted[k])
            if differences:
                return fail("multi_turn:instance_state_mismatch",
                            f"turn {turn}: {class_name} differs from the ground truth in {', '.join(differences)}",
                            [f"{k}: model {got.get(k)!r}, expected {wanted[k]!r}"[:500] for k in differences])
        missing = _unordered_missing(truth_results, model_results)
        if missing:
            return fail("multi_turn:execution_response_mismatch",
                        f"turn {turn}: {len(missing)} ground-truth result(s) missing from the model's results",
                        [m[:500] for m in missing])
    return PASS


def ground_truth_result(ground_truth: Sequence[Sequence[str]]) -> list[list[list[dict[str, Any]]]]:
    """The ground truth as a model result: one step per turn, calls as ``{name: {arg: value}}``
    where the arguments are named (positional ones stay call strings)."""
    turns: list[list[list[Any]]] = []
    for calls in ground_truth:
        step: list[Any] = []
        for text in calls:
            call = parse_call(text)
            step.append({call.name: dict(call.kwargs)} if not call.args else text)
        turns.append([step] if step else [])
    return turns


# --------------------------------------------------------------------------- driving a model

# A model turn: (messages so far, OpenAI tools) -> the calls it makes, ``[{"name", "arguments"}]``
# (none: it answers in text and the turn ends).
Respond = Callable[[list[dict[str, Any]], list[dict[str, Any]]], list[dict[str, Any]]]
MAX_STEPS_PER_TURN = 20  # BFCL's own limit before it force-terminates an entry


def run_multi_turn(
    turns: Sequence[Sequence[Mapping[str, Any]]],
    tools: list[dict[str, Any]],
    involved_classes: Sequence[str],
    initial_config: Mapping[str, Any],
    respond: Respond,
    *,
    max_steps: int = MAX_STEPS_PER_TURN,
) -> list[list[list[dict[str, Any]]]]:
    """Drive a model through an entry turn by turn: each step's calls run on the back-ends and
    their results go back as tool messages, until the model answers without a call. Returns the
    result ``check_multi_turn`` scores; a turn that hits ``max_steps`` ends the entry there (BFCL's
    force-termination: the result then has fewer turns than the ground truth)."""
    backends = Backends(involved_classes, initial_config)
    messages: list[dict[str, Any]] = []
    result: list[list[list[dict[str, Any]]]] = []
    for turn in turns:
        messages.extend(dict(m) for m in turn)
        steps: list[list[dict[str, Any]]] = []
        for _ in range(max_steps):
            calls = respond(list(messages), tools)
            if not calls:
                break
            step = [{str(c.get("name", "")): dict(c.get("arguments") or {})} for c in calls]
            steps.append(step)
            ids = [f"call_{len(result)}_{len(steps)}_{i}" for i in range(len(calls))]
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}
                for call_id, item in zip(ids, step, strict=True) for name, args in item.items()]})
            for call_id, item in zip(ids, step, strict=True):
                for name, args in item.items():
                    output = backends.execute(Call(name, (), tuple(args.items())))
                    messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        else:
            result.append(steps)
            return result  # force-terminated
        result.append(steps)
    return result


# --------------------------------------------------------------------------- records in evaluation runs


@dataclass
class MultiTurnResult(RecordResult):
    """A scored multi-turn record: beside the adapter's outputs (one per step asked), the
    model's calls as ``run_multi_turn`` collected them, turn by turn."""

    turns: list[Any] = field(default_factory=list)  # per turn, the steps (recorded ones may be call strings)


def run_record(adapter: ModelAdapter, record: Record, *, max_steps: int = MAX_STEPS_PER_TURN) -> MultiTurnResult:
    """Drive ``adapter`` through a ``multi_turn`` record and score it with BFCL's checks.

    Recorded answers cannot react to the back-ends' results, so a replay is scored as what it
    holds: the entry's ``result`` line is the model's turns, as for ``bfcl score``."""
    if isinstance(adapter, ReplayAdapter):
        return _score_recorded(adapter, record)
    expected = record.expected
    turns = [[dict(m) for m in turn] for turn in expected.get("turns") or []]
    if turns and turns[0]:
        turns[0][0].setdefault(RECORD_ID_KEY, record.id)  # what a replayed answer is looked up by
    involved = [str(c) for c in expected.get("involved_classes") or []]
    initial_config = expected.get("initial_config") or {}
    ground_truth = [list(calls) for calls in expected.get("ground_truth") or []]
    outputs: list[ModelOutput] = []

    def respond(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answered = adapter.generate([(messages, tools)])
        if len(answered) != 1:
            raise RuntimeError(f"{adapter.name} answered {len(answered)} of 1 requests")
        outputs.append(answered[0])
        return answered[0].calls

    result = run_multi_turn(turns, list(record.tools), involved, initial_config, respond, max_steps=max_steps)
    verdict = check_multi_turn(result, ground_truth, involved, initial_config)
    return MultiTurnResult(record, multi_turn_score(record, verdict, result), outputs, turns=result)


def _score_recorded(adapter: ReplayAdapter, record: Record) -> MultiTurnResult:
    expected = record.expected
    output = adapter.answers.get(record.id)
    if output is None:
        verdict = Verdict(False, "missing_result", f"no recorded answer for {record.id!r}")
        return MultiTurnResult(record, multi_turn_score(record, verdict, []), [], turns=[])
    try:
        result = json.loads(output.raw)  # a ``result`` line's value, as the replay file held it
    except ValueError:
        result = None
    verdict = check_multi_turn(result, [list(c) for c in expected.get("ground_truth") or []],
                               [str(c) for c in expected.get("involved_classes") or []],
                               expected.get("initial_config") or {})
    turns = result if isinstance(result, list) else []
    return MultiTurnResult(record, multi_turn_score(record, verdict, turns), [output], turns=turns)


# The checker names the failing turn first in its message ("turn 2: ...").
_FAILED_TURN = re.compile(r"^(?:no call in )?turn (\d+)")


def multi_turn_score(record: Record, verdict: Verdict, result: Sequence[Any]) -> RecordScore:
    """BFCL's verdict as a record score. Partial credit against the ground truth (a model may
    reach the same state by other calls, which BFCL accepts): ``tool`` when every turn calls
    the same functions, ``args`` when they also name the same arguments; ``steps`` count turns."""
    ground_truth = [list(calls) for calls in record.expected.get("ground_truth") or []]
    schemas = _schemas(record)
    want = [[_signature(parse_call(text), schemas) for text in calls] for calls in ground_truth]
    got = [[_signature(call, schemas) for step in (steps if isinstance(steps, list) else [])
            for call in _step_calls(step)] for steps in result]
    tool = len(got) == len(want) and all(
        Counter(n for n, _ in g) == Counter(n for n, _ in w) for g, w in zip(got, want, strict=True))
    args = tool and all(Counter(g) == Counter(w) for g, w in zip(got, want, strict=True))
    total = len(ground_truth)
    if verdict.valid:
        passed = total
    else:
        found = _FAILED_TURN.match(verdict.error)
        passed = int(found.group(1)) if found else 0
    return RecordScore(record.id, record_category(record), record.behavior, verdict.valid, tool or verdict.valid,
                       args or verdict.valid, verdict.valid, verdict.error_type, verdict.error,
                       steps_total=total, steps_passed=passed, details=verdict.details)


def _step_calls(step: Any) -> list[Call]:
    try:
        return to_calls(step)
    except CallSyntaxError:
        return []


def _schemas(record: Record) -> dict[str, Mapping[str, Any]]:
    return {str(f.get("name", "")): f for f in functions_of(record)}


def _named(call: Call, schemas: Mapping[str, Mapping[str, Any]]) -> Call:
    """The call with positional arguments named after the function doc's parameters (in their
    order), as a function-calling model sends them; ones beyond the doc stay positional."""
    names = list(((schemas.get(call.name) or {}).get("parameters") or {}).get("properties") or {})
    if not call.args or len(call.args) > len(names):
        return call
    return Call(call.name, (), tuple(zip(names, call.args, strict=False)) + call.kwargs)


def _signature(call: Call, schemas: Mapping[str, Mapping[str, Any]]) -> tuple[str, frozenset[str]]:
    """(name, argument names), positional arguments named as ``_named`` names them."""
    named = _named(call, schemas)
    return named.name, frozenset([f"#{i}" for i in range(len(named.args))] + [k for k, _ in named.kwargs])


def failure_summaries(result: MultiTurnResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """(expected, got) as a failure row keeps them: per turn the user's request, then the
    ground truth's calls and the model's (both as call source, so they line up) and its answer.
    The initial state stays out (it can be large): the checker's message names what differs."""
    record = result.record
    expected = record.expected
    schemas = _schemas(record)
    ground_truth = [list(calls) for calls in expected.get("ground_truth") or []]
    requests = [" / ".join(str(m.get("content") or "") for m in turn if m.get("role") == "user")
                for turn in expected.get("turns") or []]
    # Each turn ends with the first answer that makes no call (a force-terminated one never does).
    answers = [o.text for o in result.outputs if not o.calls]
    want = [{"user": requests[i] if i < len(requests) else "",
             "calls": [_named(parse_call(text), schemas).source() for text in calls]}
            for i, calls in enumerate(ground_truth)]
    got = [{"user": requests[i] if i < len(requests) else "",
            "calls": [_named(call, schemas).source() for step in (steps if isinstance(steps, list) else [])
                      for call in _step_calls(step)],
            "answer": answers[i] if i < len(answers) else ""}
           for i, steps in enumerate(result.turns)]
    errors = [o.parse_error for o in result.outputs if o.parse_error]
    return ({"behavior": MULTI_TURN, "turns": want},
            {"turns": got, "parse_error": errors[0] if errors else None})


def evaluate_with_multi_turn(*, adapter: ModelAdapter, records: Sequence[Record], batch_size: int = 64,
                             on_progress: ProgressCallback | None = None) -> EvalReport:
    """``evaluate_records`` for suites that may hold ``multi_turn`` records: the others are
    scored by it in batches first, then each multi-turn record is driven on its own (its next
    request depends on the back-ends' answers). Progress counts records of both kinds."""
    started = time.perf_counter()
    multi = {i for i, r in enumerate(records) if r.behavior == MULTI_TURN}
    if not multi:
        return evaluate_records(adapter=adapter, records=records, batch_size=batch_size, on_progress=on_progress)
    total = len(records)
    singles = [r for i, r in enumerate(records) if i not in multi]

    def single_progress(done: int, _: int) -> None:
        if on_progress:
            on_progress(done, total)

    report = evaluate_records(adapter=adapter, records=singles, batch_size=batch_size, on_progress=single_progress)
    scored: dict[int, RecordResult] = {}
    for done, index in enumerate(sorted(multi), start=len(singles) + 1):
        scored[index] = run_record(adapter, records[index])
        if on_progress:
            on_progress(done, total)
    rest = iter(report.results)
    results = [scored[i] if i in multi else next(rest) for i in range(total)]
    return EvalReport(results, model=getattr(adapter, "name", ""), seconds=time.perf_counter() - started)
