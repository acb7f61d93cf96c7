"""ul.fsm against PS3.8 section 9.2: states, events, actions and every cell of table 9-10."""

from __future__ import annotations

import pytest

from harmony_dimse.ul.fsm import (
    NEXT_STATE,
    OTHER_NEXT_STATE,
    TRANSITIONS,
    Action,
    Event,
    State,
    _parse_table,
    lookup,
)

ALL_STATES = set(range(1, 14))

# Typed by hand from PS3.8 table 9-10: for each event, the states whose cell is NOT empty.
# Every other (event, state) pair is an empty cell, i.e. not allowed.
ALLOWED_STATES: dict[int, set[int]] = {
    1: {1},
    2: {4},
    3: ALL_STATES - {1, 4},
    4: ALL_STATES - {1, 4},
    5: {1},
    6: ALL_STATES - {1, 4},
    7: {3},
    8: {3},
    9: {6, 8},
    10: ALL_STATES - {1, 4},
    11: {6},
    12: ALL_STATES - {1, 4},
    13: ALL_STATES - {1, 4},
    14: {8, 9, 12},
    15: ALL_STATES - {1, 2, 13},
    16: ALL_STATES - {1, 4},
    17: ALL_STATES - {1},
    18: {2, 13},
    19: ALL_STATES - {1, 4},
}

# Spot checks typed by hand from PS3.8 table 9-10: (event, state) -> (action, next state).
SPOT_CHECKS: list[tuple[int, int, str, int]] = [
    (1, 1, "AE-1", 4),
    (2, 4, "AE-2", 5),
    (3, 2, "AA-1", 13),
    (3, 5, "AE-3", 6),
    (3, 6, "AA-8", 13),
    (3, 13, "AA-6", 13),
    (4, 5, "AE-4", 1),
    (4, 12, "AA-8", 13),
    (5, 1, "AE-5", 2),
    (6, 2, "AE-6", 3),
    (6, 3, "AA-8", 13),
    (6, 13, "AA-7", 13),
    (7, 3, "AE-7", 6),
    (8, 3, "AE-8", 13),
    (9, 6, "DT-1", 6),
    (9, 8, "AR-7", 8),
    (10, 2, "AA-1", 13),
    (10, 5, "AA-8", 13),
    (10, 6, "DT-2", 6),
    (10, 7, "AR-6", 7),
    (10, 13, "AA-6", 13),
    (11, 6, "AR-1", 7),
    (12, 6, "AR-2", 8),
    (12, 7, "AR-8", 9),
    (12, 8, "AA-8", 13),
    (13, 6, "AA-8", 13),
    (13, 7, "AR-3", 1),
    (13, 9, "AA-8", 13),
    (13, 10, "AR-10", 12),
    (13, 11, "AR-3", 1),
    (13, 12, "AA-8", 13),
    (14, 8, "AR-4", 13),
    (14, 9, "AR-9", 11),
    (14, 12, "AR-4", 13),
    (15, 3, "AA-1", 13),
    (15, 4, "AA-2", 1),
    (15, 11, "AA-1", 13),
    (16, 2, "AA-2", 1),
    (16, 6, "AA-3", 1),
    (16, 13, "AA-2", 1),
    (17, 2, "AA-5", 1),
    (17, 4, "AA-4", 1),
    (17, 6, "AA-4", 1),
    (17, 13, "AR-5", 1),
    (18, 2, "AA-2", 1),
    (18, 13, "AA-2", 1),
    (19, 2, "AA-1", 13),
    (19, 7, "AA-8", 13),
    (19, 13, "AA-7", 13),
]

# Next states typed by hand from PS3.8 tables 9-6 to 9-9.
ACTION_NEXT_STATES = {
    "AE-1": 4, "AE-2": 5, "AE-3": 6, "AE-4": 1, "AE-5": 2, "AE-6": 3, "AE-7": 6, "AE-8": 13,
    "DT-1": 6, "DT-2": 6,
    "AR-1": 7, "AR-2": 8, "AR-3": 1, "AR-4": 13, "AR-5": 1, "AR-6": 7, "AR-7": 8, "AR-8": 9,
    "AR-9": 11, "AR-10": 12,
    "AA-1": 13, "AA-2": 1, "AA-3": 1, "AA-4": 1, "AA-5": 1, "AA-6": 13, "AA-7": 13, "AA-8": 13,
}  # fmt: skip


def sta(number: int) -> State:
    return State[f"Sta{number}"]


def evt(number: int) -> Event:
    return Event[f"Evt{number}"]


def test_states_events_and_actions_are_the_standards() -> None:
    assert [s.name for s in State] == [f"Sta{n}" for n in range(1, 14)]
    assert [e.name for e in Event] == [f"Evt{n}" for n in range(1, 20)]
    assert {a.value for a in Action} == set(ACTION_NEXT_STATES)
    assert {a.name for a in Action} == {v.replace("-", "_") for v in ACTION_NEXT_STATES}
    assert State.Sta13.value.startswith("Awaiting Transport Connection Close")
    assert Event.Evt18.value.startswith("ARTIM timer expired")


def test_every_cell_is_filled_or_explicitly_empty() -> None:
    expected = {(evt(e), sta(s)) for e, states in ALLOWED_STATES.items() for s in states}
    assert set(TRANSITIONS) == expected
    assert len(TRANSITIONS) == 123
    for event in Event:
        for state in State:
            if (event, state) not in expected:
                assert lookup(event, state) is None


@pytest.mark.parametrize(("event", "state", "action", "next_state"), SPOT_CHECKS)
def test_spot_checked_cells(event: int, state: int, action: str, next_state: int) -> None:
    assert lookup(evt(event), sta(state)) == (Action(action), sta(next_state))


def test_action_next_states() -> None:
    assert {a.value: s for a, s in NEXT_STATE.items()} == {
        name: sta(n) for name, n in ACTION_NEXT_STATES.items()
    }
    assert {Action.AE_6: State.Sta13, Action.AR_8: State.Sta10} == OTHER_NEXT_STATE


def test_every_action_appears_in_the_table() -> None:
    assert {action for action, _ in TRANSITIONS.values()} == set(Action)


def test_table_entries_take_the_actions_next_state() -> None:
    for action, next_state in TRANSITIONS.values():
        assert next_state is NEXT_STATE[action]


def test_local_primitives_only_where_the_standard_allows() -> None:
    # Requests from the local user never appear in Sta1 (except the association request) or Sta13.
    primitives = [Event.Evt7, Event.Evt8, Event.Evt9, Event.Evt11, Event.Evt14, Event.Evt15]
    for event in primitives:
        assert lookup(event, State.Sta13) is None
        assert lookup(event, State.Sta1) is None


def test_malformed_table_is_refused() -> None:
    with pytest.raises(ValueError, match="Evt1"):
        _parse_table("      Sta1 Sta2\nEvt1  AE-1\n")
    with pytest.raises(ValueError):
        _parse_table("      Sta1\nEvt1  XX-9\n")
