from __future__ import annotations

import random
from fractions import Fraction
from math import comb

import pytest

from reasoncli.stopping import (
    STOP_RULES,
    BetaRule,
    EscRule,
    beta_leader_probability,
    beta_should_stop,
    esc_should_stop,
)


def test_esc_stops_when_window_agrees() -> None:
    assert esc_should_stop(["1", "2", "2", "2"], window=3)
    assert not esc_should_stop(["2", "2", "1"], window=3)


def test_esc_uses_equivalence_not_string_equality() -> None:
    assert esc_should_stop(["0.5", "1/2", r"\frac{1}{2}"], window=3)


def test_esc_needs_a_full_window_of_present_answers() -> None:
    assert not esc_should_stop(["2", "2"], window=3)
    assert not esc_should_stop(["2", None, "2"], window=3)
    assert not esc_should_stop(["2", "", "2"], window=3)
    assert esc_should_stop([None, "2", "2"], window=2)


def test_esc_window_one_and_bad_window() -> None:
    assert esc_should_stop(["9"], window=1)
    assert not esc_should_stop([None], window=1)
    with pytest.raises(ValueError):
        esc_should_stop(["1"], window=0)


@pytest.mark.parametrize(
    ("top", "second", "expected"),
    [
        (3, 0, 1 - 0.5**4),
        (0, 0, 0.5),
        (4, 4, 0.5),
        (10, 10, 0.5),
        (1, 0, 0.75),
        (0, 1, 0.25),
        (2, 1, 11 / 16),
    ],
)
def test_beta_leader_probability_known_values(top: int, second: int, expected: float) -> None:
    assert beta_leader_probability(top, second) == pytest.approx(expected, abs=1e-15)


def _beta_tail_by_integration(a: int, b: int) -> float:
    """P(X > 1/2) for X ~ Beta(a, b) by exact polynomial integration of the density."""

    # density = x^(a-1) (1-x)^(b-1) / B(a, b); expand (1-x)^(b-1) and integrate from 1/2 to 1.
    def integral(lo: Fraction, hi: Fraction) -> Fraction:
        total = Fraction(0)
        for k in range(b):
            coef = comb(b - 1, k) * (-1) ** k
            power = a + k
            total += Fraction(coef, power) * (hi**power - lo**power)
        return total

    return float(integral(Fraction(1, 2), Fraction(1)) / integral(Fraction(0), Fraction(1)))


def test_beta_leader_probability_matches_integration() -> None:
    rng = random.Random(3)
    for _ in range(20):
        top, second = rng.randint(0, 12), rng.randint(0, 12)
        expected = _beta_tail_by_integration(top + 1, second + 1)
        assert beta_leader_probability(top, second) == pytest.approx(expected, rel=1e-12)


def test_beta_leader_probability_symmetry_and_large_counts() -> None:
    assert beta_leader_probability(7, 2) + beta_leader_probability(2, 7) == pytest.approx(1.0)
    assert beta_leader_probability(2000, 1000) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        beta_leader_probability(-1, 0)


def test_beta_should_stop_uses_top_two_counts() -> None:
    assert not beta_should_stop([3])  # 0.9375
    assert beta_should_stop([4])  # 0.96875
    assert beta_should_stop([1, 6, 0])
    assert not beta_should_stop([5, 4, 1])
    assert beta_should_stop([3], threshold=0.9)
    assert not beta_should_stop([])
    assert not beta_should_stop([0, 0])


def test_esc_rule_reason() -> None:
    rule = EscRule(window=4)
    assert rule.decide(["1", "42", "42", "42"]) is None
    assert rule.decide(["1", "42", "42", "42", "42.0"]) == "last 4 answers agree on 42"


def test_beta_rule_waits_for_min_samples() -> None:
    rule = BetaRule(threshold=0.9, min_samples=5)
    assert rule.decide(["7"] * 4) is None
    reason = rule.decide(["7"] * 5)
    assert reason is not None
    assert reason.startswith("7 leads 5 to 0")


def test_beta_rule_close_race_and_no_answers() -> None:
    rule = BetaRule()
    assert rule.decide(["1", "2", "1", "2", "1"]) is None
    assert rule.decide([None] * 10) is None


def test_beta_rule_leader_is_by_count() -> None:
    reason = BetaRule(threshold=0.9, min_samples=1).decide(["3", "5", "5", "5", "5", "5"])
    assert reason is not None
    assert reason.startswith("5 leads 5 to 1")


def test_rule_validation() -> None:
    with pytest.raises(ValueError):
        EscRule(window=0)
    with pytest.raises(ValueError):
        BetaRule(threshold=0.4)
    with pytest.raises(ValueError):
        BetaRule(min_samples=0)


@pytest.mark.parametrize("name", sorted(STOP_RULES))
def test_stop_rules_registry_builds_working_rules(name: str) -> None:
    rule = STOP_RULES[name]()
    assert rule.decide([]) is None
    assert rule.decide(["8"] * 20) is not None
