"""Scoring of our own records: every expected behaviour, with partial credit (no Django imports).

The headline metric is exact match. Beside it each score says whether the model picked the
right tool(s), the right argument names and the right values, so dashboards can tell a
model that misses tools from one that only misformats values.

- ``call``: BFCL's checker against the acceptable values (one call: simple/multiple rules;
  several: one-to-one in any order). Records imported from BFCL keep their own category
  and function docs and are scored exactly as the leaderboard does (greedy pairing of
  parallel calls; dotted names as BFCL's function-calling or prompt models send them,
  whichever spelling the output uses).
- ``sequence``: ordered calls whose arguments may reference earlier results
  (``{prev.customer_id}``). ``run_sequences`` drives a model turn by turn and feeds each
  step's recorded result back (or a simulated one carrying the fields later steps refer
  to, typed after the parameter that uses them). ``teaching_turns`` builds training turns
  the same way: one per step, in the conversation the model is evaluated in, and a closing
  text answer after the last result.
- ``clarify`` / ``abstain``: no call; ``ask_for_details``: no call and the reply names
  every missing required field.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ftops.core.adapters import ModelOutput
from ftops.core.checker import (
    PYTHON,
    Verdict,
    allows_omission,
    check_call,
    check_entry,
    find_function,
    normalise_name,
    perfect_matching,
    to_bfcl_calls,
)
from ftops.core.records import (
    PREV_REF,
    Record,
    arguments_json,
    first_acceptable,
    resolve_prev,
    target_calls,
    target_text,
    tool_function,
)

if TYPE_CHECKING:
    from ftops.core.adapters import ModelAdapter

# Our categories beside BFCL's: what the dashboards group by.
CATEGORY_ORDER = ("simple", "multiple", "parallel", "parallel_multiple", "multi_step", "clarify",
                  "ask_for_details", "irrelevance")


@dataclass(frozen=True)
class RecordScore:
    record_id: str
    category: str
    behavior: str
    exact: bool
    tool: bool  # the right tool(s) were called (or, correctly, none)
    args: bool  # ... with the right argument names
    values: bool  # ... and the right values (the same as exact)
    error_type: str = ""
    error: str = ""
    steps_total: int = 0
    steps_passed: int = 0
    details: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def functions_of(record: Record) -> list[dict[str, Any]]:
    """Function docs of the offered tools (OpenAI ``{"type", "function"}`` or plain)."""
    return [tool_function(tool) for tool in record.tools]


def record_category(record: Record) -> str:
    bfcl_category = record.meta.get("bfcl_category")
    if bfcl_category:
        return str(bfcl_category)
    if record.behavior == "sequence":
        return "multi_step"
    if record.behavior in ("clarify", "ask_for_details"):
        return record.behavior
    if record.behavior == "abstain":
        return "irrelevance"
    calls = record.expected.get("calls") or []
    if len(calls) > 1:
        return "parallel" if len(record.tools) <= 1 else "parallel_multiple"
    return "simple" if len(record.tools) <= 1 else "multiple"


def expected_summary(record: Record) -> dict[str, Any]:
    return {"behavior": record.behavior, **record.expected}


def got_summary(outputs: Sequence[ModelOutput]) -> dict[str, Any]:
    calls = [c for o in outputs for c in o.calls]
    texts = [o.text for o in outputs if o.text]
    errors = [o.parse_error for o in outputs if o.parse_error]
    return {"calls": calls, "text": "\n".join(texts), "parse_error": errors[0] if errors else None}


def score_record(record: Record, output: ModelOutput | Sequence[ModelOutput]) -> RecordScore:
    """Score a model's answer. A sequence may be answered in one output (all calls at once)
    or as a list of outputs, one per turn, as ``run_sequences`` collects them."""
    outputs = [output] if isinstance(output, ModelOutput) else list(output)
    category = record_category(record)
    if record.meta.get("bfcl_category"):
        return _score_bfcl(record, outputs[0] if outputs else ModelOutput(calls=[]), category)
    if record.behavior == "call":
        return _score_call(record, outputs[0] if outputs else ModelOutput(calls=[]), category)
    if record.behavior == "sequence":
        calls = [c for o in outputs for c in o.calls]
        return _score_steps(record, calls, outputs, category)
    return _score_no_call(record, outputs[0] if outputs else ModelOutput(calls=[]), category)


# --------------------------------------------------------------------------- calls


def _bfcl_output(output: ModelOutput) -> Any:
    return to_bfcl_calls(output.calls) if output.calls else None


def _ground_truth(record: Record) -> list[dict[str, Any]]:
    return [{c["name"]: c.get("arguments") or {}} for c in record.expected.get("calls") or []]


def _score_bfcl(record: Record, output: ModelOutput, category: str) -> RecordScore:
    functions = record.meta.get("bfcl_functions") or functions_of(record)
    ground_truth = _ground_truth(record) if record.behavior == "call" else None
    # BFCL expects dotted names with underscores from function-calling models and as they are from
    # prompt models; a run's model is one or the other, so its own spelling says which rule applies.
    dotted = any("." in str(call.get("name", "")) for call in output.calls)
    verdict = check_entry(category, functions, _bfcl_output(output), ground_truth, underscore_to_dot=not dotted)
    if ground_truth is None or not ground_truth:
        # Relevance categories: the decision to call (or not) is all there is to get right.
        return _verdict_score(record, category, verdict, verdict.valid, verdict.valid)
    tool, args = _partial(functions, output.calls, ground_truth)
    return _verdict_score(record, category, verdict, tool or verdict.valid, args or verdict.valid)


def _score_call(record: Record, output: ModelOutput, category: str) -> RecordScore:
    functions = functions_of(record)
    ground_truth = _ground_truth(record)
    kind = "parallel" if len(ground_truth) > 1 else ("multiple" if len(functions) > 1 else "simple")
    if output.parse_error and not output.calls:
        verdict = Verdict(False, "ast_decoder:decoder_failed", output.parse_error)
    else:
        verdict = check_entry(kind, functions, _bfcl_output(output), ground_truth, language=PYTHON)
    tool, args = _partial(functions, output.calls, ground_truth)
    return _verdict_score(record, category, verdict, tool or verdict.valid, args or verdict.valid)


def _verdict_score(record: Record, category: str, verdict: Verdict, tool: bool, args: bool) -> RecordScore:
    return RecordScore(record.id, category, record.behavior, verdict.valid, tool, args and tool, verdict.valid,
                       verdict.error_type, verdict.error, details=verdict.details)


def _partial(functions: Sequence[Mapping[str, Any]], calls: Sequence[Mapping[str, Any]],
             ground_truth: Sequence[Mapping[str, Any]]) -> tuple[bool, bool]:
    """(right tools, right argument names) with calls paired one-to-one in any order."""
    got_names = Counter(normalise_name(str(c.get("name", ""))) for c in calls)
    want_names = Counter(normalise_name(next(iter(g))) for g in ground_truth)
    if got_names != want_names:
        return False, False
    fits = []
    for want in ground_truth:
        name = next(iter(want))
        schema = find_function(functions, name)
        fits.append([j for j, call in enumerate(calls)
                     if normalise_name(str(call.get("name", ""))) == normalise_name(name)
                     and argument_names_ok(schema, call.get("arguments") or {}, want[name] or {})])
    return True, perfect_matching(fits, len(calls)) is not None


def argument_names_ok(schema: Mapping[str, Any] | None, arguments: Mapping[str, Any],
                      acceptable: Mapping[str, Any]) -> bool:
    if not isinstance(arguments, Mapping):
        return False
    parameters = (schema or {}).get("parameters") or {}
    properties = parameters.get("properties") if schema is not None else None
    names = set(arguments)
    if any(p not in names for p in parameters.get("required") or []):
        return False
    if any(n not in acceptable or (properties is not None and n not in properties) for n in names):
        return False
    return all(p in names or allows_omission(v) for p, v in acceptable.items())


# --------------------------------------------------------------------------- no call


def mentions_field(text: str, name: str) -> bool:
    """Whether a reply asks for ``name``: "customer_id", "customer id" and "customer ID" all count."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ").lower().split()
    plain = " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())
    return bool(words) and (name.lower() in text.lower() or f" {' '.join(words)} " in f" {plain} ")


def _score_no_call(record: Record, output: ModelOutput, category: str) -> RecordScore:
    behavior = record.behavior
    if output.calls:
        error_type = "irrelevance_error:decoder_success" if behavior == "abstain" else f"{behavior}:unexpected_call"
        names = ", ".join(str(c.get("name")) for c in output.calls)
        return RecordScore(record.id, category, behavior, False, False, False, False, error_type,
                           f"called {names} where the answer is to {behavior.replace('_', ' ')}")
    if behavior == "abstain":
        return RecordScore(record.id, category, behavior, True, True, True, True)
    if output.parse_error:
        return RecordScore(record.id, category, behavior, False, False, False, False,
                           f"{behavior}:unparseable_output", output.parse_error)
    text = output.text.strip()
    if not text:
        return RecordScore(record.id, category, behavior, False, True, False, False, f"{behavior}:empty_reply",
                           "no call and no question to the user")
    if behavior == "ask_for_details":
        fields = [str(f) for f in record.expected.get("required_fields") or []]
        missing = [f for f in fields if not mentions_field(text, f)]
        if missing:
            return RecordScore(record.id, category, behavior, False, True, False, False,
                               "ask_for_details:missing_fields", f"the reply does not ask for {', '.join(missing)}")
    return RecordScore(record.id, category, behavior, True, True, True, True)


# --------------------------------------------------------------------------- sequences


def step_result(record: Record, index: int, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Step ``index``'s result: recorded, else simulated with what the next steps refer to.

    A field referenced by step k comes from step k-1 unless an earlier result holds it; the
    simulated value takes the type of the parameter that refers to it, so a model copying
    it faithfully passes the type check.
    """
    steps = record.expected.get("steps") or []
    recorded = steps[index].get("result") if index < len(steps) else None
    if isinstance(recorded, dict):
        return dict(recorded)
    available = {key for r in results for key in r}
    simulated: dict[str, Any] = {"status": "ok"}
    if index + 1 < len(steps):
        following = steps[index + 1]
        schema = find_function(functions_of(record), str(following.get("name", "")))
        properties = ((schema or {}).get("parameters") or {}).get("properties") or {}
        for param, value in (following.get("arguments") or {}).items():
            match = PREV_REF.match(value) if isinstance(value, str) else None
            if match and match.group(1) not in available:
                spec = properties.get(param)
                kind = spec.get("type") if isinstance(spec, Mapping) else None
                simulated[match.group(1)] = _simulated_value(match.group(1), kind, index)
    return simulated


def _simulated_value(name: str, kind: Any, index: int) -> Any:
    if kind == "integer":
        return 4200 + index
    if kind in ("number", "float"):
        return 42.5 + index
    if kind == "boolean":
        return True
    return f"{name}-{index + 1:03d}"


@dataclass
class _StepCheck:
    name_ok: bool
    args_ok: bool
    verdict: Verdict


def _check_step(record: Record, index: int, call: Mapping[str, Any],
                results: Sequence[Mapping[str, Any]]) -> _StepCheck:
    step = (record.expected.get("steps") or [])[index]
    name = str(step.get("name", ""))
    arguments = resolve_prev(dict(step.get("arguments") or {}), [dict(r) for r in results])
    acceptable = {k: v if _is_alternatives(step, k) else [v] for k, v in arguments.items()}
    schema = find_function(functions_of(record), name)
    raw_arguments = call.get("arguments")
    got_arguments: dict[str, Any] = raw_arguments if isinstance(raw_arguments, dict) else {}
    got_name = str(call.get("name", ""))
    verdict = check_call(schema, {got_name: got_arguments}, {name: acceptable})
    name_ok = normalise_name(got_name) == normalise_name(name)
    args_ok = name_ok and argument_names_ok(schema, got_arguments, acceptable)
    return _StepCheck(name_ok, args_ok, verdict)


def _is_alternatives(step: Mapping[str, Any], param: str) -> bool:
    # Steps hold plain values; a step may opt in to acceptable-value lists with "alternatives".
    return param in (step.get("alternatives") or ())


def _score_steps(record: Record, calls: Sequence[Mapping[str, Any]], outputs: Sequence[ModelOutput],
                 category: str) -> RecordScore:
    steps = record.expected.get("steps") or []
    results: list[dict[str, Any]] = []
    checks: list[_StepCheck] = []
    for index, call in enumerate(calls[:len(steps)]):
        check = _check_step(record, index, call, results)
        checks.append(check)
        if not check.name_ok:
            break
        results.append(step_result(record, index, results))
    return _sequence_score(record, category, checks, len(calls), outputs)


def _sequence_score(record: Record, category: str, checks: list[_StepCheck], n_calls: int,
                    outputs: Sequence[ModelOutput]) -> RecordScore:
    total = len(record.expected.get("steps") or [])
    passed = sum(1 for c in checks if c.verdict.valid)
    complete = len(checks) == total and n_calls <= total
    tool = complete and all(c.name_ok for c in checks)
    args = tool and all(c.args_ok for c in checks)
    exact = args and passed == total
    error_type, error = "", ""
    failing = next(((i, c) for i, c in enumerate(checks) if not c.verdict.valid), None)
    if failing is not None:
        error_type, error = failing[1].verdict.error_type, f"step {failing[0] + 1}: {failing[1].verdict.error}"
    elif n_calls > total:
        error_type, error = "sequence_checker:extra_call", f"{n_calls} calls for {total} steps"
    elif len(checks) < total:
        parse_error = next((o.parse_error for o in outputs if o.parse_error), None)
        error_type = "sequence_checker:missing_step" if not parse_error else "ast_decoder:decoder_failed"
        error = f"step {len(checks) + 1} of {total} was never called" + (f" ({parse_error})" if parse_error else "")
    return RecordScore(record.id, category, record.behavior, exact, tool, args, exact, error_type, error,
                       steps_total=total, steps_passed=passed)


@dataclass
class SequenceRun:
    record: Record
    outputs: list[ModelOutput]
    score: RecordScore


def run_sequence(adapter: ModelAdapter, record: Record) -> SequenceRun:
    return run_sequences(adapter, [record])[0]


def run_sequences(adapter: ModelAdapter, records: Sequence[Record]) -> list[SequenceRun]:
    """Drive every sequence turn by turn; all records still running share one batch per turn."""
    states = [_SequenceState(record) for record in records]
    for turn in range(1 + max((len(r.expected.get("steps") or []) for r in records), default=0)):
        active = [s for s in states if not s.done]
        if not active:
            break
        outputs = adapter.generate([(s.messages, list(s.record.tools)) for s in active])
        for state, output in zip(active, outputs, strict=True):
            state.advance(output, turn)
    return [SequenceRun(s.record, s.outputs, _sequence_score(s.record, record_category(s.record), s.checks,
                                                             s.n_calls, s.outputs)) for s in states]


class _SequenceState:
    def __init__(self, record: Record) -> None:
        self.record = record
        self.steps = record.expected.get("steps") or []
        self.messages: list[dict[str, Any]] = [dict(m) for m in record.messages]
        if self.messages:
            self.messages[0].setdefault("ftops_record_id", record.id)
        self.results: list[dict[str, Any]] = []
        self.checks: list[_StepCheck] = []
        self.outputs: list[ModelOutput] = []
        self.n_calls = 0
        self.done = not self.steps

    def advance(self, output: ModelOutput, turn: int) -> None:
        self.outputs.append(output)
        if not output.calls:
            self.done = True
            return
        answered: list[tuple[str, dict[str, Any]]] = []
        tool_calls = []
        for k, call in enumerate(output.calls):
            self.n_calls += 1
            index = len(self.checks)
            if index >= len(self.steps):
                self.done = True
                break
            check = _check_step(self.record, index, call, self.results)
            self.checks.append(check)
            if not check.name_ok:
                self.done = True
                break
            result = step_result(self.record, index, self.results)
            self.results.append(result)
            call_id = f"call_{turn}_{k}"
            tool_calls.append({"id": call_id, "type": "function",
                               "function": {"name": call.get("name"), "arguments": json.dumps(call.get("arguments"))}})
            answered.append((call_id, result))
        if tool_calls:
            self.messages.append({"role": "assistant", "content": output.text or None, "tool_calls": tool_calls})
            # The result stays a dict: the training renderer writes dict content one canonical way.
            self.messages.extend({"role": "tool", "tool_call_id": call_id, "content": result}
                                 for call_id, result in answered)
        if len(self.checks) >= len(self.steps):
            self.done = True


@dataclass(frozen=True)
class Turn:
    """One assistant turn a model is taught: the conversation before it and the ideal answer."""

    messages: list[dict[str, Any]]
    calls: list[dict[str, Any]]  # [{name, arguments}]; empty when the answer is text
    text: str = ""


def teaching_turns(record: Record) -> list[Turn]:
    """The turns a record teaches: one for a single-step record, one per step and a closing one for a sequence.

    A sequence's turns are built by ``_SequenceState`` itself, fed the ideal call at each
    step, so the conversation a model is trained on (earlier calls, the results
    ``run_sequences`` sends back, recorded or simulated) is the one it is evaluated on.
    """
    if record.behavior != "sequence":
        calls = target_calls(record)
        return [Turn([dict(m) for m in record.messages], calls, "" if calls else target_text(record))]
    state = _SequenceState(record)
    turns: list[Turn] = []
    while not state.done:
        index = len(state.checks)
        call = {"name": str(state.steps[index].get("name", "")),
                "arguments": ideal_step_arguments(record, index, state.results)}
        turns.append(Turn([dict(m) for m in state.messages], [call]))
        state.advance(ModelOutput(calls=[call]), len(turns) - 1)
    if len(state.checks) == len(state.steps) and state.steps:
        # After the last result the task is done: the model answers in text instead of calling
        # again (scoring counts any call beyond the steps as an extra call).
        turns.append(Turn([dict(m) for m in state.messages], [], sequence_closing_text(record, state.results)))
    return turns


def ideal_step_arguments(record: Record, index: int, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Step ``index``'s arguments with ``{prev.field}`` resolved and alternatives at their canonical value."""
    step = (record.expected.get("steps") or [])[index]
    arguments = resolve_prev(dict(step.get("arguments") or {}), [dict(r) for r in results])
    for param in list(arguments):
        if _is_alternatives(step, param):
            send, value = first_acceptable(arguments[param])
            if send:
                arguments[param] = value
            else:
                del arguments[param]
    return arguments


def sequence_closing_text(record: Record, results: Sequence[Mapping[str, Any]]) -> str:
    """The short answer after a sequence's last result: which call finished it and what it returned."""
    steps = record.expected.get("steps") or []
    last = str(steps[-1].get("name", "")) if steps else ""
    outcome = arguments_json(dict(results[-1])) if results else "{}"
    return f"Done: {last} returned {outcome}."


def tag_request(record: Record) -> list[dict[str, Any]]:
    """The record's messages with its id on the first one (for replayed answers)."""
    messages = [dict(m) for m in record.messages] or [{"role": "user", "content": ""}]
    messages[0].setdefault("ftops_record_id", record.id)
    return messages


