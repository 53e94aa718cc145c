"""bench.campaign's pure parts and the sandbox fleet it (and the campaign demo) build: files, floor, arguments."""

from __future__ import annotations

import argparse

import pytest

from bench.campaign import floor_seconds, wave_list
from bench.scale import fitted_timings
from cli.campaign import load_campaign
from sandbox import fleet
from sandbox.topology import Topology


def test_a_fleet_campaign_is_written_as_an_operator_would_and_validates(tmp_path):
    topo = Topology(tmp_path / "sandbox", ports="auto", timings=fitted_timings(0.5))
    names = fleet.api_names(12)
    assert names[0] == "api-01" and fleet.api_names(120)[-1] == "api-120"
    assert fleet.zone_lines(names[:1], 20) == "api-01 20 A 127.0.0.2\n"
    settings = {"name": "bench", "waves": [1, 3, "rest"], "max_in_flight": 4, "stop_on": {"error_budget": "100%"}}
    path = fleet.write_campaign(topo, tmp_path / "campaign", names, settings)
    campaign = load_campaign(str(path)).campaign
    assert [len(w) for w in campaign.waves] == [1, 3, 8]
    plan = campaign.plan("api-07")
    assert (plan.dns.record, plan.kong.service, plan.decommission.kind) == ("api-07.example.test.", "api-07", "none")
    assert fleet.route_url(topo, "api-07").endswith("/api-07/orders")


def test_the_floor_is_each_waves_longest_wait_or_its_rounds_of_the_median():
    waves = [["a"], ["b", "c", "d"], ["e", "f", "g", "h", "i"]]
    waits = {"a": 40.0, "b": 40.0, "c": 42.0, "d": 41.0, "e": 40.0, "f": 40.0, "g": 41.0, "h": 90.0, "i": 40.0}
    total, parts = floor_seconds(waves, waits, max_in_flight=2)
    assert parts == [40.0, 82.0, 120.0]  # 1 round; 2 rounds x 41; 3 rounds x 40 beats the longest (90)
    assert total == 242.0
    assert floor_seconds([["x"]], {}, 2) == (0.0, [0.0]), "a wave without completed cutovers adds nothing"


def test_waves_on_the_command_line():
    assert wave_list("1,9,40,150") == [1, 9, 40, 150]
    assert wave_list("1, 25%, rest") == [1, "25%", "rest"]
    with pytest.raises(argparse.ArgumentTypeError):
        wave_list(" , ")
