"""The cluster endpoint follows a new writer some seconds after the promotion, as Aurora's DNS does (no servers:
the reconciler's tracker on a fake clock, the resolver on a state file in memory)."""

from __future__ import annotations

import time

import pytest

from labkit.errors import ConfigError
from labkit.sandbox.daemon.moves import EndpointMoves
from labkit.sandbox.procs.settings import DEFAULT_ENDPOINT_DELAY, ENDPOINT_DELAY_ENV, BadSetting, endpoint_delay
from labkit.sandbox.state import SandboxState
from labkit.sandbox.vpc import dns


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_endpoint_names_the_old_writer_until_the_delay_has_passed():
    clock = Clock()
    moves = EndpointMoves(5.0, clock)
    assert moves.follow("c", "a") == {}  # the first writer: nothing to move from
    clock.now += 1
    assert moves.follow("c", "b") == {"endpoint_writer": "a", "endpoint_moves_at": 1006.0}
    clock.now += 3
    assert moves.follow("c", "b") == {"endpoint_writer": "a", "endpoint_moves_at": 1006.0}  # not restarted
    clock.now += 2
    assert moves.follow("c", "b") == {}


def test_a_writer_restarting_in_place_moves_nothing_and_a_move_back_in_time_cancels():
    clock = Clock()
    moves = EndpointMoves(5.0, clock)
    moves.follow("c", "a")
    assert moves.follow("c", None) == {}  # a reboot without failover: the endpoint keeps its instance
    assert moves.follow("c", "a") == {}
    moves.follow("c", "b")
    clock.now += 1
    assert moves.follow("c", "a") == {}  # back to a before the endpoint moved: it never left a


def test_a_zero_delay_moves_at_once_and_gone_clusters_are_forgotten():
    moves = EndpointMoves(0.0, Clock())
    moves.follow("c", "a")
    assert moves.follow("c", "b") == {}
    moves.forget(set())
    assert moves.follow("c", "z") == {}  # a new cluster of the same name: its first writer


def _state(moves_at: float, status: str = "available") -> SandboxState:
    state = SandboxState(daemon_pid=1, endpoint_url="http://127.0.0.1:1", port=1, region="us-east-1", home="/x",
                         log_file="/x/log", started_at=0.0, ready=True)  # fmt: skip
    state.instances = {
        "w1": {"cluster": "c", "port": 4001, "status": status},
        "w2": {"cluster": "c", "port": 4002, "status": "available"},
    }
    state.clusters = {
        "c": {"endpoint": "c.cluster", "reader_endpoint": "c.cluster-ro", "port": 3306, "writer": "w2",
              "readers": [], "endpoint_writer": "w1", "endpoint_moves_at": moves_at},
    }  # fmt: skip
    return state


def test_a_resolution_before_the_move_gets_the_old_writer_even_while_it_restarts(monkeypatch):
    state = _state(time.time() + 60, status="rebooting")
    monkeypatch.setattr(dns, "require_running", lambda: state)
    assert dns.endpoint_map(state)["c.cluster"] == ["w1"]
    assert dns.pick("c.cluster", timeout=0.1) == ("w1", 4001, 3306)  # DNS answers; the connection may be refused
    assert dns.endpoint_map(state)["c.cluster-ro"] == ["w2"]  # no reader: the reader endpoint names the writer


def test_a_resolution_after_the_move_gets_the_new_writer(monkeypatch):
    state = _state(time.time() - 0.001)
    monkeypatch.setattr(dns, "require_running", lambda: state)
    assert dns.pick("c.cluster", timeout=0.1) == ("w2", 4002, 3306)


def test_the_delay_setting_defaults_to_aurora_s_ttl_and_refuses_nonsense():
    assert endpoint_delay({}) == DEFAULT_ENDPOINT_DELAY == 5.0
    assert endpoint_delay({ENDPOINT_DELAY_ENV: "0"}) == 0.0
    assert endpoint_delay({ENDPOINT_DELAY_ENV: " 1.5 "}) == 1.5
    for bad in ("-1", "soon", "nan", "inf", "601"):
        with pytest.raises(BadSetting, match=ENDPOINT_DELAY_ENV):
            endpoint_delay({ENDPOINT_DELAY_ENV: bad})


def test_sandbox_up_refuses_a_bad_delay_before_starting_anything(monkeypatch, lab_home):
    from labkit.sandbox import control

    monkeypatch.setenv(ENDPOINT_DELAY_ENV, "later")
    monkeypatch.setattr(control, "check_installed", lambda: None)
    with pytest.raises(ConfigError) as raised:
        control.up(quiet=True)
    assert raised.value.field == ENDPOINT_DELAY_ENV and "600" in raised.value.fix
    assert not (lab_home / "sandbox.json").exists()
