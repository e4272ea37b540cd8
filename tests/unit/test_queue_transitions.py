"""The state machines' tables (jobs and batches), exhaustively."""

from __future__ import annotations

import itertools

import pytest

from reviewer.batchops import FINISHED
from reviewer.queue import (
    BATCH_TERMINAL,
    BATCH_TRANSITIONS,
    BATCHES_IN_FLIGHT,
    INITIAL,
    TERMINAL,
    TRANSITIONS,
    BatchState,
    State,
    allowed,
    batch_allowed,
)

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
    assert {State.POSTED, State.SKIPPED, State.STALE, State.FAILED} == TERMINAL


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


# --- the batch state machine ----------------------------------------------------------------------

BATCH_EXPECTED = {
    (BatchState.CREATING, BatchState.SUBMITTED), (BatchState.CREATING, BatchState.ABANDONED),
    (BatchState.SUBMITTED, BatchState.ENDED), (BatchState.SUBMITTED, BatchState.MISSING),
    (BatchState.SUBMITTED, BatchState.ARCHIVED), (BatchState.SUBMITTED, BatchState.FOREIGN),
}


@pytest.mark.parametrize("source,target", list(itertools.product(BatchState, BatchState)))
def test_batch_transition_table(source: BatchState, target: BatchState) -> None:
    assert batch_allowed(source, target) == ((source, target) in BATCH_EXPECTED)


def test_batch_terminal_and_in_flight_states() -> None:
    assert set(BATCH_TRANSITIONS) == set(BatchState)
    assert {BatchState.ENDED, BatchState.ABANDONED, BatchState.MISSING, BatchState.ARCHIVED,
                              BatchState.FOREIGN} == BATCH_TERMINAL
    assert set(BatchState) - BATCH_TERMINAL == BATCHES_IN_FLIGHT


def test_every_finished_batch_state_has_an_explanation_for_cancel() -> None:
    assert set(FINISHED) == BATCH_TERMINAL


def test_jobs_are_created_only_queued_or_skipped() -> None:
    assert {State.QUEUED, State.SKIPPED} == INITIAL
