"""The campaign demo's pieces that run without a sandbox: its flag, timings, and the events it charts.

The whole demo (``make demo DEMO_ARGS="--campaign --auto-approve --exit-when-done"``) takes about two
minutes on the sandbox; tests/e2e/test_campaign.py covers the same campaign behaviour with four APIs.
"""

from __future__ import annotations

from models.durations import parse_duration
from sandbox.demo import build_parser
from sandbox.demo_campaign import campaign_timings, chart_label


def test_the_demo_takes_the_campaign_flag():
    assert build_parser().parse_args(["--campaign", "--auto-approve"]).campaign is True
    assert build_parser().parse_args([]).campaign is False


def test_min_requests_fit_each_apis_load():
    timings = campaign_timings(3.0)
    window = parse_duration(timings.monitor_window).total_seconds()
    assert timings.min_requests == int(3.0 * window / 2) and timings.cutover_ttl < timings.record_ttl


def test_which_campaign_events_the_chart_shows():
    assert chart_label("wave 2 started (3 cutovers)") == "wave 2"
    assert chart_label("line stopped: 1 cutover(s) did not complete") == "line stopped"
    assert chart_label("resumed by alice (acknowledged: api-02)") == "resumed"
    assert chart_label("wave-2-flip approved by alice") is None
