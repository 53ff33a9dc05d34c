"""Bars, sparklines and numbers of the UI as text."""

from __future__ import annotations

import math

from engine.ui import text as fmt


def test_fill_bar_in_eighths() -> None:
    assert fmt.fill_bar(0.0, 4) == "░░░░"
    assert fmt.fill_bar(1.0, 4) == "████"
    assert fmt.fill_bar(0.5, 4) == "██░░"
    assert fmt.fill_bar(0.75, 5) == "███▊░"  # 30 eighths: 3 full cells and 6/8
    assert fmt.fill_bar(1 / 32, 4) == "▏░░░"
    assert fmt.fill_bar(2.0, 3) == "███" and fmt.fill_bar(-1, 3) == "░░░"
    assert fmt.fill_bar(math.nan, 3) == "░░░" and fmt.fill_bar(0.5, 0) == ""
    assert all(len(fmt.fill_bar(f / 100, 7)) == 7 for f in range(101))


def test_confidence_bar_marks_interval_and_mean() -> None:
    assert fmt.confidence_bar(0.70, 0.81, 0.90, 10) == "───────━●━"
    assert fmt.confidence_bar(0.0, 0.5, 1.0, 10) == "━━━━━●━━━━"
    assert fmt.confidence_bar(0.2, 0.2, 0.2, 5) == "─●───"
    assert fmt.confidence_bar(0.9, 1.0, 1.0, 4) == "───●"  # the top value stays on the axis
    assert fmt.confidence_bar(0.6, 0.5, 0.4, 10) == "────━●━───"  # bounds given the wrong way
    assert fmt.confidence_bar(0.1, 0.2, 0.3, 0) == ""
    assert fmt.confidence_bar(0.0, None, 1.0, 4) == "━━━━"  # no mean before the first pull


def test_sparkline_scales_to_its_maximum() -> None:
    assert fmt.sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    assert fmt.sparkline([0.0] * 5, 5) == "▁▁▁▁▁"
    assert fmt.sparkline([1, 2, 3, 100], 2) == "▁█"  # the last values only
    assert fmt.sparkline([math.inf, 5], 2) == "▁█"
    assert fmt.sparkline([], 5) == ""


def test_shorten_and_numbers() -> None:
    assert fmt.shorten("  one\n two   three ", 20) == "one two three"
    assert fmt.shorten("abcdefghij", 5) == "abcd…"
    assert len(fmt.shorten("word " * 50, 17)) <= 17
    assert fmt.count(1234) == "1234" and fmt.count(45210) == "45.2k"
    assert fmt.count(2_500_000) == "2.50M" and fmt.count(2.5) == "2.5"
    assert fmt.rate(None) == "unlimited" and fmt.rate(6000.4) == "6000"
    assert fmt.usd(0) == "$0" and fmt.usd(0.0125) == "$0.013" and fmt.usd(0.00031) == "$0.00031"
    assert fmt.usd(1.5) == "$1.50" and fmt.usd(1234.5) == "$1,234"
    assert fmt.duration(None) == "-" and fmt.duration(42.4) == "42s"
    assert fmt.duration(185) == "3m05s" and fmt.duration(600) == "10m"
    assert fmt.duration(7620) == "2h07m"
    assert fmt.seconds_ms(0.0391) == "39ms" and fmt.seconds_ms(1.25) == "1.25s"
    assert fmt.percent(0.256) == "26%"
