from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from reasoncli import answers, math_verify_child
from reasoncli.answers import (
    AnswerGroup,
    answers_equivalent,
    extract_answer,
    final_answer_span,
    group_answers,
    normalize_answer,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"So $x = \boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"First \boxed{3}, then corrected: \boxed{4}", "4"),
        (r"\boxed{\left\{1, 2\right\}}", r"\left\{1, 2\right\}"),
        (r"The result is \fbox{7}.", "7"),
        (r"Answer is \boxed{5} and then \boxed{6", "5"),  # cut off inside the last box
        ("Adding them up. The answer is $1,000$.", "1000"),
        ("The answer is 42 apples.", "42"),
        ("so the answer is **17**", "17"),
        ("The final answer is: 3.5. Let me double check that.", "3.5"),
        ("Final Answer: x + 1", "x + 1"),
        ("**Final Answer**: 15", "15"),
        (r"The answer is \(\frac{1}{2}\).", r"\frac{1}{2}"),
        ("The answer is 5, since 2 + 3 = 5", "5"),
        ("The answer is (3, 4).", "(3, 4)"),
        ("answer: -7", "-7"),
        ("The answer is 12.\nWait, no. The answer is 13.", "13"),
        ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
        ("First 3 apples, then 1,250 more, total 1,253", "1253"),
        ("The difference is 3-5 which gives -2", "-2"),
        ("She ate 3/4 of the pie", "3/4"),
        ("It costs 2.75 dollars each, so", "2.75"),
        ("The answer is", None),
        ("No numbers at all here.", None),
        ("", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_boxed_wins_over_phrase_and_number() -> None:
    assert extract_answer(r"The answer is 3. Actually \boxed{4}. Then 99.") == "4"


def test_text_cut_off_mid_sentence_falls_back_to_last_number() -> None:
    assert extract_answer("We have 12 eggs and buy 30 more, so the total is 4") == "4"


def test_empty_box_is_ignored() -> None:
    assert extract_answer(r"\boxed{} so the answer is 9") == "9"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The correct option is (B).", "B"),
        ("After eliminating A and D, the answer is C because it fits.", "C"),
        ("A train leaves at noon. I pick D", "D"),
        (r"\boxed{E}", "E"),
        ("Answer: (a) is wrong, (B) is right", "B"),
        ("A train leaves at noon and never arrives.", None),
        ("nothing to choose", None),
    ],
)
def test_extract_multiple_choice(text: str, expected: str | None) -> None:
    assert extract_answer(text, multiple_choice=True) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$1,000$", "1000"),
        ("3.50", "3.5"),
        ("4.0", "4"),
        ("-0.0", "0"),
        ("0012", "12"),
        (r"\text{(B)}", "B"),
        ("(c)", "C"),
        (r"10\%", "10"),
        (r"90^\circ", "90"),
        (r"\dfrac{1}{2}", r"\frac{1}{2}"),
        (r"1\!000", "1000"),
        ("x = 5", "5"),
        ("**12**.", "12"),
        (r"\boxed{7}", "7"),
        ("  New   York ", "New York"),
        ("(1,2)", "(1,2)"),
        ("1/2", "1/2"),
        ("5!", "5!"),  # a factorial, not an exclamation
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize("raw", ["$1,000$", "3.50", r"\text{(B)}", r"\dfrac{1}{2}", "x = 5"])
def test_normalize_is_idempotent(raw: str) -> None:
    once = normalize_answer(raw)
    assert normalize_answer(once) == once


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("0.5", "1/2"),
        ("1/2", r"\frac{1}{2}"),
        ("0.5", r"\frac12"),
        ("-0.25", r"-\frac{1}{4}"),
        ("1000", "1,000"),
        ("3.50", "$3.5$"),
        ("(B)", "B"),
        (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}"),
        (r"\frac{\sqrt{2}}{2}", r"\sqrt{2}/2"),
        (r"2\pi", r"\pi \cdot 2"),
        ("5!", "120"),
    ],
)
def test_equivalent(a: str, b: str) -> None:
    assert answers_equivalent(a, b)
    assert answers_equivalent(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("0.5", "0.51"),
        ("1/2", "1/3"),
        ("B", "C"),
        ("x + 1", "x - 1"),
        ("", "0"),
        (r"\frac{1}{0}", "1"),
        ("1" * 300, "1" * 299 + "2"),
    ],
)
def test_not_equivalent(a: str, b: str) -> None:
    assert not answers_equivalent(a, b)
    assert not answers_equivalent(b, a)


def test_garbage_never_raises() -> None:
    assert answers_equivalent(r"\frac{{", "}}}") is False
    assert answers_equivalent("\\", "$$") is False


def test_math_verify_writes_nothing_to_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    math_verify_child.WORKER.close()  # a fresh child, which would warn that its timeouts are off
    assert answers_equivalent(r"\sqrt{18}", r"3\sqrt{2}")
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("", "")


def test_runaway_math_verify_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # sympy would spend minutes expanding 9^(9^(9^9)) inside a single C call.
    monkeypatch.setattr(math_verify_child, "VERIFY_TIMEOUT_S", 1.0)
    started = time.monotonic()
    assert not answers_equivalent("9^{9^{9^{9}}}", "1")
    assert time.monotonic() - started < 10
    assert answers_equivalent(r"\sqrt{12}", r"2\sqrt{3}")  # a fresh child takes over


def test_equivalence_is_safe_across_threads() -> None:
    pairs = [(rf"\sqrt{{{4 * k * k}}}", str(2 * k)) for k in range(2, 10)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda pair: answers_equivalent(*pair), pairs))
    assert results == [True] * len(pairs)


def test_long_inputs_skip_math_verify_but_keep_fast_path() -> None:
    long = "9" * 300
    assert answers_equivalent(long, long + ".0")


def test_group_answers_pools_equivalent_forms_in_first_seen_order() -> None:
    groups = group_answers(["1/2", "7", None, "0.5", "", r"\frac{1}{2}", "7.0", "  "])
    assert groups == [AnswerGroup("1/2", [0, 3, 5]), AnswerGroup("7", [1, 6])]


def test_group_answers_all_invalid() -> None:
    assert group_answers([None, "", "   "]) == []
    assert group_answers([]) == []


def test_group_representative_is_normalized_first_seen() -> None:
    assert group_answers(["$1,000$", "1000"])[0].answer == "1000"


def test_final_answer_span_points_at_last_statement() -> None:
    text = r"Work. The answer is 3. More work. Final answer: \boxed{4} done"
    span = final_answer_span(text)
    assert span is not None
    assert text[span[0] : span[1]].endswith(r"\boxed{4}")
    assert final_answer_span("just 42") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So the answer is 331 * 23 = 7263.", "7263"),
        ("The answer is that the ball costs 5 cents.", "5"),
        ("The answer is \\frac{1}{2}.", "\\frac{1}{2}"),
        ("The answer is x = 4.", "4"),
        ("The answer is indeed 8.", "8"),
        ("The answer is approximately 3.5 meters.", "3.5"),
    ],
)
def test_stated_calculations_and_sentences_keep_their_result(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 5 x 12 = 60.", "60"),  # "x" is the operator, not a unit word
        ("The answer is 5 times 12 = 60 apples.", "60"),
        ("The answer is 5 x 12.", "5 x 12"),  # stated unworked: kept as stated, graded below
        # a template copied after the real answer: the last statement that states something
        (
            'The answer is 14.\nThe answer is 14.\nThe answer is X," which is the final answer '
            "to the problem",
            "14",
        ),  # fmt: skip
        ("The answer is 9. I think the answer is the final answer.", "9"),
        ("The answer is 3. So the answer is X.' where X is the final answer", "3"),
        ("The answer is that it's 42 apples", "42"),  # an apostrophe is not a quoted template
        ("The answer is indeed correct", None),
        ("The answer is 18 +", None),  # cut off while stating it
        ("The answer is 14. Then the answer is 18 +", "14"),
    ],
)
def test_statements_that_state_nothing_are_passed_over(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is: No", "No"),
        ("The answer is no, because 1001 = 7 * 11 * 13.", "No"),
        ("**Yes.** 97 has no divisor but 1 and itself.", "Yes"),
        ("No, 1001 is not a prime number. 1001 = 7 x 11 x 13", "No"),
        ("Final answer: true", "True"),
        ("No numbers at all here.", None),  # "No" opening a sentence is not an answer
        ("The answer is no more than 5", "5"),
    ],
)
def test_yes_no_answers(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_grading_policy_an_answer_is_a_complete_value() -> None:
    """The same rule groups votes and grades answers, since both use answers_equivalent."""
    assert not answers_equivalent("2x +", "2")  # a cut-off fragment equals nothing
    assert not answers_equivalent("18 +", "18 +")
    assert not answers_equivalent("17 - 14", "3")  # not worked out: not its value
    assert not answers_equivalent("6 * 11", "66")
    assert not answers_equivalent("5 x 12", "60")
    assert answers_equivalent("6 * 11", "11 * 6")  # two unworked forms of one value
    assert answers_equivalent("1/2", "0.5") and answers_equivalent("5!", "120")  # exact forms
    assert answers_equivalent("yes", "Yes.") and not answers_equivalent("Yes", "No")
    assert [g.answer for g in group_answers(["66", "6 * 11", "66", "no", "No"])] == [
        "66",
        "6 * 11",
        "No",
    ]
    assert answers.is_unevaluated("17 - 14") and not answers.is_unevaluated("-3")
    assert answers.is_incomplete("2x +") and not answers.is_incomplete("2x + 1")
