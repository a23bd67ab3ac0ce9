"""The BFCL checker: every error type by hand, then mutations of correct answers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ftops.core.checker import (
    PERFECT,
    canonical_output,
    check_call,
    check_entry,
    java_literal,
    js_literal,
    normalise_string,
)
from ftops.evaluation.bfcl import load_category
from tests.evaluation.helpers import BFCL_DIR

AREA = {"name": "calc.area", "parameters": {"type": "dict", "required": ["base", "height"], "properties": {
    "base": {"type": "integer"}, "height": {"type": "float"}, "unit": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "sizes": {"type": "array", "items": {"type": "integer"}},
    "flag": {"type": "boolean"},
    "options": {"type": "dict", "properties": {"mode": {"type": "string"}, "depth": {"type": "integer"}}},
    "points": {"type": "array", "items": {"type": "dict"}},
}}}
ANSWER = {"calc.area": {"base": [10], "height": [5.0], "unit": ["units", ""], "tags": [["a", "b"], ""],
                        "sizes": [[1, 2], ""], "flag": [True, ""],
                        "options": [{"mode": ["Fast Mode"], "depth": [2, ""]}, ""],
                        "points": [[{"x": [1], "y": [2]}], ""]}}


def simple(args: dict[str, Any], name: str = "calc_area") -> Any:
    return check_entry("simple_python", [AREA], [{name: args}], [ANSWER])


def test_minimal_answer_passes() -> None:
    assert simple({"base": 10, "height": 5.0}).valid


@pytest.mark.parametrize(("args", "error_type"), [
    ({"height": 5.0}, "simple_function_checker:missing_required"),
    ({"base": 10, "height": 5.0, "colour": "red"}, "simple_function_checker:unexpected_param"),
    ({"base": "10", "height": 5.0}, "type_error:simple"),
    ({"base": True, "height": 5.0}, "type_error:simple"),
    ({"base": 10.0, "height": 5.0}, "type_error:simple"),
    ({"base": 10, "height": 5.0, "flag": 1}, "type_error:simple"),
    # BFCL skips the item check when the parameter may be left out; the values then differ.
    ({"base": 10, "height": 5.0, "sizes": [1, "2"]}, "value_error:list/tuple"),
    ({"base": 11, "height": 5.0}, "value_error:others"),
    ({"base": 10, "height": 5.5}, "value_error:others"),
    ({"base": 10, "height": 5.0, "unit": "metres"}, "value_error:string"),
    ({"base": 10, "height": 5.0, "tags": ["b", "a"]}, "value_error:list/tuple"),
    ({"base": 10, "height": 5.0, "tags": ["a"]}, "value_error:list/tuple"),
    ({"base": 10, "height": 5.0, "options": {"mode": "fast", "depth": 2}}, "value_error:dict_value"),
    ({"base": 10, "height": 5.0, "options": {"mode": "fast mode", "speed": 1}}, "value_error:dict_key"),
    ({"base": 10, "height": 5.0, "options": {"depth": 2}}, "value_error:dict_key"),
    ({"base": 10, "height": 5.0, "points": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}, "value_error:list_dict_count"),
    # The "" alternative is tried last and, as in BFCL, its count error is what is reported.
    ({"base": 10, "height": 5.0, "points": [{"x": 1, "y": 3}]}, "value_error:list_dict_count"),
])
def test_each_error_type(args: dict[str, Any], error_type: str) -> None:
    verdict = simple(args)
    assert (verdict.valid, verdict.error_type) == (False, error_type)


@pytest.mark.parametrize("sizes", [[1, "2"], [1, True], [1.0, 2.0]])
def test_array_items_are_type_checked(sizes: list[Any]) -> None:
    answer = {"calc.area": {"base": [10], "height": [5.0], "sizes": [[1, 2]]}}
    output = [{"calc_area": {"base": 10, "height": 5.0, "sizes": sizes}}]
    verdict = check_entry("simple", [AREA], output, [answer])
    assert (verdict.valid, verdict.error_type) == (False, "type_error:nested")


def test_wrong_function_name() -> None:
    verdict = simple({"base": 10, "height": 5.0}, name="calc.volume")
    assert (verdict.valid, verdict.error_type) == (False, "simple_function_checker:wrong_func_name")


def test_dotted_names_are_spelt_as_the_model_convention_requires() -> None:
    # BFCL's function-calling models cannot send dots: "calc.area" is expected as "calc_area";
    # with underscore_to_dot off (prompt models) the dotted name is the only right one.
    assert simple({"base": 10, "height": 5.0}, name="calc_area").valid
    assert simple({"base": 10, "height": 5.0}, name="calc.area").error_type == (
        "simple_function_checker:wrong_func_name")
    dotted = [{"calc.area": {"base": 10, "height": 5.0}}]
    assert check_entry("simple_python", [AREA], dotted, [ANSWER], underscore_to_dot=False).valid


def test_parameter_in_schema_but_not_in_answer_is_unexpected() -> None:
    answer = {"calc.area": {"base": [10], "height": [5.0]}}
    verdict = check_entry("simple", [AREA], [{"calc_area": {"base": 10, "height": 5.0, "unit": "cm"}}], [answer])
    assert verdict.error_type == "simple_function_checker:unexpected_param"


def test_answer_parameter_without_empty_string_must_be_sent() -> None:
    answer = {"calc.area": {"base": [10], "height": [5.0], "unit": ["cm"]}}
    verdict = check_entry("simple", [AREA], [{"calc_area": {"base": 10, "height": 5.0}}], [answer])
    assert verdict.error_type == "simple_function_checker:missing_optional"


def test_int_is_accepted_for_float_and_nothing_else_is_coerced() -> None:
    assert simple({"base": 10, "height": 5}).valid
    assert simple({"base": 10, "height": "5"}).error_type == "type_error:simple"


def test_strings_are_normalised_like_bfcl() -> None:
    assert normalise_string("April 1, 2024") == normalise_string("april 1 2024") == "april12024"
    assert normalise_string("It's a-b_c/d*e^f.") == 'it"sabcdef'
    assert simple({"base": 10, "height": 5.0, "unit": "UNITS."}).valid
    assert simple({"base": 10, "height": 5.0, "tags": ["A", "b "]}).valid
    assert simple({"base": 10, "height": 5.0, "options": {"mode": "fast-mode"}}).valid


def test_nested_dict_values_are_compared_as_plain_values_like_bfcl() -> None:
    function = {"name": "f", "parameters": {"type": "dict", "required": ["cfg"],
                                            "properties": {"cfg": {"type": "dict"}}}}
    answer = {"f": {"cfg": [{"inner": [{"k": "v"}]}]}}
    assert check_entry("simple", [function], [{"f": {"cfg": {"inner": {"k": "v"}}}}], [answer]).valid
    # No normalisation below the first level: BFCL compares the inner dict with ==.
    assert check_entry("simple", [function], [{"f": {"cfg": {"inner": {"k": "V"}}}}], [answer]).error_type == (
        "value_error:dict_value")


def test_variable_of_the_answers_type_is_compared_exactly() -> None:
    # The schema says integer but the answer holds a variable name: BFCL accepts that name.
    function = {"name": "f", "parameters": {"type": "dict", "required": ["n"],
                                            "properties": {"n": {"type": "integer"}}}}
    answer = {"f": {"n": ["count"]}}
    assert check_entry("simple", [function], [{"f": {"n": "count"}}], [answer]).valid
    assert check_entry("simple", [function], [{"f": {"n": "Count"}}], [answer]).error_type == "value_error:others"


def test_dict_with_only_optional_answer_is_unclear() -> None:
    function = {"name": "f", "parameters": {"type": "dict", "required": [], "properties": {"o": {"type": "dict"}}}}
    verdict = check_entry("simple", [function], [{"f": {"o": {"a": 1}}}], [{"f": {"o": [""]}}])
    assert verdict.error_type == "dict_checker:unclear"


def test_output_shapes() -> None:
    assert check_entry("simple", [AREA], "I think the area is 25.", [ANSWER]).error_type == "ast_decoder:decoder_failed"
    assert check_entry("simple", [AREA], [{"calc.area": "base=10"}], [ANSWER]).error_type == (
        "ast_decoder:decoder_wrong_output_format")
    assert check_entry("simple", [AREA], [], [ANSWER]).error_type == "simple_function_checker:wrong_count"
    two = [{"calc_area": {"base": 10, "height": 5.0}}] * 2
    assert check_entry("simple", [AREA], two, [ANSWER]).error_type == "simple_function_checker:wrong_count"


OTHER = {"name": "calc.volume", "parameters": {"type": "dict", "required": ["side"],
                                               "properties": {"side": {"type": "integer"}}}}


def test_multiple_picks_the_expected_function() -> None:
    output = [{"calc_area": {"base": 10, "height": 5.0}}]
    assert check_entry("multiple", [OTHER, AREA], output, [ANSWER]).valid
    wrong = [{"calc_volume": {"side": 3}}]
    verdict = check_entry("multiple", [OTHER, AREA], wrong, [ANSWER])
    assert verdict.error_type == "simple_function_checker:wrong_func_name"
    verdict = check_entry("multiple", [OTHER, AREA], output * 2, [ANSWER])
    assert verdict.error_type == "multiple_function_checker:wrong_count"


def test_parallel_any_order_one_to_one() -> None:
    answers = [{"calc.area": {"base": [10], "height": [5.0]}}, {"calc.volume": {"side": [3]}},
               {"calc.area": {"base": [2], "height": [1.0]}}]
    output = [{"calc_area": {"base": 2, "height": 1}}, {"calc_volume": {"side": 3}},
              {"calc_area": {"base": 10, "height": 5.0}}]
    assert check_entry("parallel_multiple", [AREA, OTHER], output, answers).valid
    # The same call twice cannot stand for two different expected calls.
    twice = [output[1], output[2], output[2]]
    verdict = check_entry("parallel_multiple", [AREA, OTHER], twice, answers)
    assert (verdict.valid, verdict.error_type) == (False, "parallel_function_checker_no_order:cannot_find_match")
    assert "expected call 2" in verdict.error
    assert check_entry("parallel", [AREA], output[:2], answers).error_type == (
        "parallel_function_checker_no_order:wrong_count")


def test_parallel_is_greedy_like_bfcl_and_perfect_matching_is_an_option() -> None:
    # Expected 0 accepts either output; expected 1 only the first. BFCL's greedy pass gives
    # output 0 to expected 0 and then fails expected 1; a perfect matching finds the pairing.
    answers = [{"calc.volume": {"side": [3, 4]}}, {"calc.volume": {"side": [3]}}]
    output = [{"calc_volume": {"side": 3}}, {"calc_volume": {"side": 4}}]
    verdict = check_entry("parallel", [OTHER], output, answers)
    assert (verdict.valid, verdict.error_type) == (False, "parallel_function_checker_no_order:cannot_find_match")
    assert check_entry("parallel", [OTHER], list(reversed(output)), answers).valid
    assert check_entry("parallel", [OTHER], output, answers, matching=PERFECT).valid


def test_irrelevance_and_relevance() -> None:
    call = [{"calc_area": {"base": 1, "height": 1.0}}]
    assert check_entry("irrelevance", [AREA], "Sorry, I cannot.", None).valid
    assert check_entry("live_irrelevance", [AREA], [], None).valid
    assert check_entry("irrelevance", [AREA], [{}], None).valid
    verdict = check_entry("irrelevance", [AREA], call, None)
    assert (verdict.valid, verdict.error_type) == (False, "irrelevance_error:decoder_success")
    assert check_entry("live_relevance", [AREA], call, None).valid
    assert check_entry("live_relevance", [AREA], "no", None).error_type == "relevance_error:decoder_failed"


@pytest.mark.parametrize("output", [[{"calc.area": "base=1"}], [{"calc.area": {}, "calc.volume": {}}], [{}, {}],
                                    [{"calc.area": {}}, {}]])
def test_outputs_outside_the_call_format_count_as_no_call(output: list[dict[str, Any]]) -> None:
    # bfcl-eval 2026.3.23's is_empty_output: anything not in the call-list format is no call.
    assert check_entry("irrelevance", [AREA], output, None).valid
    assert check_entry("live_relevance", [AREA], output, None).error_type == "relevance_error:decoder_failed"


def test_omittable_array_also_accepts_an_explicit_empty_list() -> None:
    function = {"name": "tag", "parameters": {"type": "dict", "required": ["id"], "properties": {
        "id": {"type": "integer"}, "labels": {"type": "array", "items": {"type": "string"}}}}}
    answer = {"tag": {"id": [1], "labels": [["x"], ""]}}
    assert check_call(function, {"tag": {"id": 1, "labels": []}}, answer).valid
    assert check_call(function, {"tag": {"id": 1}}, answer).valid
    strict = {"tag": {"id": [1], "labels": [["x"]]}}
    assert check_call(function, {"tag": {"id": 1, "labels": []}}, strict).error_type == "value_error:list/tuple"


def test_json_schema_type_names_work_too() -> None:
    function = {"name": "pay", "parameters": {"type": "object", "required": ["amount"], "properties": {
        "amount": {"type": "number"}, "meta": {"type": "object"}, "ids": {"type": "array", "items": {"type": "string"}},
        "note": {"type": ["string", "null"]}}}}
    answer = {"pay": {"amount": [12.5, 12], "meta": [{"k": ["v"]}, ""], "ids": [["a"]], "note": ["hi", ""]}}
    good = {"amount": 12, "meta": {"k": "v"}, "ids": ["A"], "note": "Hi"}
    assert check_call(function, {"pay": good}, answer).valid
    assert check_call(function, {"pay": {**good, "ids": [1]}}, answer).error_type == "type_error:nested"


def test_java_and_javascript_literals() -> None:
    function = {"name": "Util.run", "parameters": {"type": "dict", "required": ["n", "on", "items"], "properties": {
        "n": {"type": "long"}, "on": {"type": "boolean"}, "items": {"type": "Array", "items": {"type": "String"}}}}}
    answer = [{"Util.run": {"n": [42], "on": [True], "items": [["a", "b"]]}}]
    java = [{"Util_run": {"n": "42L", "on": "true", "items": "new String[]{a, b}"}}]
    assert check_entry("simple_java", [function], java, answer).valid
    # BFCL reads Java arguments as literal strings only: a native JSON value is a type error.
    native = [{"Util_run": {"n": 42, "on": True, "items": ["a", "b"]}}]
    assert check_entry("simple_java", [function], native, answer).error_type == "type_error:java"
    assert check_entry("simple_java", [function], [{"Util_run": {"n": "43L", "on": "true", "items": "new String[]{}"}}],
                       answer).error_type == "value_error:others"
    # "42" is no long literal (no L): it stays a string and fails the type check.
    assert check_entry("simple_java", [function], [{"Util_run": {"n": "42", "on": "true", "items": "new String[]{}"}}],
                       answer).error_type == "type_error:simple"
    assert java_literal('new ArrayList<>(Arrays.asList("a", "b"))', "ArrayList", "String") == ["a", "b"]
    assert java_literal("3.5f", "float") == 3.5
    assert java_literal('new HashMap<String, Object>() {{ put("k", 1); }}', "HashMap") == {"k": 1}
    assert java_literal("not a number", "integer") == "not a number"
    assert js_literal("[1, 2]", "array", "integer") == [1, 2]
    assert js_literal("'quoted'", "String") == "quoted"
    assert js_literal("12n", "Bigint") == 12
    assert js_literal("{'a': [1, 2], 'b': true}", "dict") == {"a": [1, 2], "b": True}
    js_function = {"name": "f", "parameters": {"type": "dict", "required": ["flag"], "properties": {
        "flag": {"type": "Boolean"}}}}
    assert check_entry("simple_javascript", [js_function], [{"f": {"flag": "true"}}], [{"f": {"flag": [True]}}]).valid
    assert check_entry("simple_javascript", [js_function], [{"f": {"flag": True}}],
                       [{"f": {"flag": [True]}}]).error_type == "type_error:js"


def test_canonical_output_fills_required_empty_only_values() -> None:
    function = {"name": "f", "parameters": {"type": "dict", "required": ["a"], "properties": {
        "a": {"type": "string"}, "b": {"type": "integer"}}}}
    truth = [{"f": {"a": [""], "b": ["", 3], "ghost": ["", "x"]}}]
    assert canonical_output(truth, [function]) == [{"f": {"a": "", "b": 3}}]
    assert check_entry("simple", [function], canonical_output(truth, [function]), truth).valid


# --------------------------------------------------------------------------- mutations

needs_bfcl = pytest.mark.skipif(not BFCL_DIR.is_dir(), reason="../shared/bfcl is not present")


def _canonical_pairs(category: str) -> list[tuple[Any, list[dict[str, Any]]]]:
    entries = [e for e in load_category(BFCL_DIR, category) if e.ground_truth is not None]
    return [(e, canonical_output(e.ground_truth, e.functions)) for e in entries]


def _schema(entry: Any, name: str) -> dict[str, Any]:
    return next(f for f in entry.functions if f["name"].replace(".", "_") == name)


@needs_bfcl
@pytest.mark.parametrize("category", ["simple_python", "multiple", "live_simple"])
def test_mutations_of_correct_answers(category: str) -> None:
    counts = {"drop": 0, "retype": 0, "extra": 0, "value": 0}
    for entry, output in _canonical_pairs(category):
        if not check_entry(category, entry.functions, output, entry.ground_truth).valid:
            continue  # the four unsatisfiable live entries
        name, args = next(iter(output[0].items()))
        schema = _schema(entry, name)
        props = schema["parameters"]["properties"]
        required = [p for p in schema["parameters"].get("required", []) if p in args]
        if required:
            dropped = copy.deepcopy(output)
            del dropped[0][name][required[0]]
            verdict = check_entry(category, entry.functions, dropped, entry.ground_truth)
            assert verdict.error_type == "simple_function_checker:missing_required", entry.id
            counts["drop"] += 1
        extra = copy.deepcopy(output)
        extra[0][name]["zz_not_a_parameter"] = 1
        verdict = check_entry(category, entry.functions, extra, entry.ground_truth)
        assert verdict.error_type == "simple_function_checker:unexpected_param", entry.id
        counts["extra"] += 1
        for param, value in args.items():
            kind = props[param]["type"]
            if kind == "integer" and type(value) is int:
                retyped = copy.deepcopy(output)
                retyped[0][name][param] = str(value)
                verdict = check_entry(category, entry.functions, retyped, entry.ground_truth)
                assert verdict.error_type == "type_error:simple", entry.id
                counts["retype"] += 1
                changed = copy.deepcopy(output)
                changed[0][name][param] = value + 987654
                verdict = check_entry(category, entry.functions, changed, entry.ground_truth)
                assert verdict.error_type == "value_error:others", entry.id
                counts["value"] += 1
                break
            if kind == "string" and isinstance(value, str) and value:
                changed = copy.deepcopy(output)
                changed[0][name][param] = value + " qqq zzz"
                verdict = check_entry(category, entry.functions, changed, entry.ground_truth)
                assert verdict.error_type == "value_error:string", entry.id
                counts["value"] += 1
                break
    assert min(counts.values()) >= 20, counts


@needs_bfcl
@pytest.mark.parametrize("category", ["parallel", "parallel_multiple", "live_parallel"])
def test_parallel_mutations(category: str) -> None:
    checked = 0
    for entry, output in _canonical_pairs(category):
        reordered = list(reversed(output))
        assert check_entry(category, entry.functions, reordered, entry.ground_truth, matching=PERFECT).valid, entry.id
        dropped = output[:-1]
        assert check_entry(category, entry.functions, dropped, entry.ground_truth).error_type == (
            "parallel_function_checker_no_order:wrong_count")
        name = next(iter(output[-1]))
        changed = copy.deepcopy(output)
        changed[-1][name]["zz_not_a_parameter"] = True
        verdict = check_entry(category, entry.functions, changed, entry.ground_truth)
        assert verdict.error_type == "parallel_function_checker_no_order:cannot_find_match", entry.id
        checked += 1
    assert checked == {"parallel": 200, "parallel_multiple": 200, "live_parallel": 16}[category]
