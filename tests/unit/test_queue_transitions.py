"""The state machine's table, exhaustively."""

from __future__ import annotations

import itertools

import pytest

from reviewer.queue import TERMINAL, TRANSITIONS, State, allowed

EXPECTED = {
    (State.QUEUED, State.SUBMITTING), (State.QUEUED, State.SKIPPED), (State.QUEUED, State.STALE),
    (State.QUEUED, State.FAILED),
    (State.SUBMITTING, State.SUBMITTED), (State.SUBMITTING, State.QUEUED), (State.SUBMITTING, State.ANSWERED),
    (State.SUBMITTING, State.FAILED),
    (State.SUBMITTED, State.ANSWERED), (State.SUBMITTED, State.QUEUED), (State.SUBMITTED, State.FAILED),
    (State.ANSWERED, State.POSTING), (State.ANSWERED, State.STALE),
    (State.POSTING, State.POSTED), (State.POSTING, State.STALE), (State.POSTING, State.ANSWERED),
    (State.POSTING, State.FAILED),
}


@pytest.mark.parametrize("source,target", list(itertools.product(State, State)))
def test_transition_table(source: State, target: State) -> None:
    assert allowed(source, target) == ((source, target) in EXPECTED)


def test_terminal_states() -> None:
    assert TERMINAL == {State.POSTED, State.SKIPPED, State.STALE, State.FAILED}


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(State)


def test_every_open_state_can_reach_a_terminal_state() -> None:
    for start in set(State) - TERMINAL:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & TERMINAL, start
