"""The DICOM Upper Layer state machine of PS3.8 section 9.2, written as data.

States (tables 9-1 to 9-5), events (table 9-10's rows), actions (tables 9-6 to 9-9) and the state
transition table 9-10 itself. ``TRANSITIONS`` holds every non-empty cell of table 9-10; a missing
``(event, state)`` pair is an empty cell of the standard, i.e. not allowed. ``ul.connection``
performs the actions; this module only says which action and which next state.
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    """Machine states, PS3.8 tables 9-1 to 9-5; the value is the standard's definition."""

    Sta1 = "Idle"
    Sta2 = "Transport connection open (Awaiting A-ASSOCIATE-RQ PDU)"
    Sta3 = "Awaiting local A-ASSOCIATE response primitive (from local user)"
    Sta4 = "Awaiting transport connection opening to complete (from local transport service)"
    Sta5 = "Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU"
    Sta6 = "Association established and ready for data transfer"
    Sta7 = "Awaiting A-RELEASE-RP PDU"
    Sta8 = "Awaiting local A-RELEASE response primitive (from local user)"
    Sta9 = "Release collision requestor side; awaiting A-RELEASE response (from local user)"
    Sta10 = "Release collision acceptor side; awaiting A-RELEASE-RP PDU"
    Sta11 = "Release collision requestor side; awaiting A-RELEASE-RP PDU"
    Sta12 = (
        "Release collision acceptor side; awaiting A-RELEASE response primitive (from local user)"
    )
    Sta13 = "Awaiting Transport Connection Close Indication (Association no longer exists)"


class Event(Enum):
    """Machine events, the rows of PS3.8 table 9-10; the value is the standard's definition."""

    Evt1 = "A-ASSOCIATE request (local user)"
    Evt2 = "Transport connect confirmation (local transport service)"
    Evt3 = "A-ASSOCIATE-AC PDU (received on transport connection)"
    Evt4 = "A-ASSOCIATE-RJ PDU (received on transport connection)"
    Evt5 = "Transport connection indication (local transport service)"
    Evt6 = "A-ASSOCIATE-RQ PDU (received on transport connection)"
    Evt7 = "A-ASSOCIATE response primitive (accept)"
    Evt8 = "A-ASSOCIATE response primitive (reject)"
    Evt9 = "P-DATA request primitive"
    Evt10 = "P-DATA-TF PDU"
    Evt11 = "A-RELEASE request primitive"
    Evt12 = "A-RELEASE-RQ PDU (received on open transport connection)"
    Evt13 = "A-RELEASE-RP PDU (received on transport connection)"
    Evt14 = "A-RELEASE response primitive"
    Evt15 = "A-ABORT request primitive"
    Evt16 = "A-ABORT PDU (received on open transport connection)"
    Evt17 = "Transport connection closed indication (local transport service)"
    Evt18 = "ARTIM timer expired (Association reject/release timer)"
    Evt19 = "Unrecognized or invalid PDU received"


class Action(Enum):
    """Machine actions, PS3.8 tables 9-6 (AE), 9-7 (DT), 9-8 (AR) and 9-9 (AA)."""

    # Association establishment
    AE_1 = "AE-1"  # Issue TRANSPORT CONNECT request primitive to local transport service -> Sta4
    AE_2 = "AE-2"  # Send A-ASSOCIATE-RQ-PDU -> Sta5
    AE_3 = "AE-3"  # Issue A-ASSOCIATE confirmation (accept) primitive -> Sta6
    AE_4 = "AE-4"  # Issue A-ASSOCIATE confirmation (reject) primitive, close transport -> Sta1
    AE_5 = "AE-5"  # Issue transport connection response primitive; start ARTIM timer -> Sta2
    AE_6 = "AE-6"  # Stop ARTIM; if the A-ASSOCIATE-RQ is acceptable by the service-provider:
    #                issue A-ASSOCIATE indication -> Sta3; otherwise send A-ASSOCIATE-RJ PDU
    #                and start ARTIM -> Sta13
    AE_7 = "AE-7"  # Send A-ASSOCIATE-AC PDU -> Sta6
    AE_8 = "AE-8"  # Send A-ASSOCIATE-RJ PDU and start ARTIM timer -> Sta13
    # Data transfer
    DT_1 = "DT-1"  # Send P-DATA-TF PDU -> Sta6
    DT_2 = "DT-2"  # Send P-DATA indication primitive -> Sta6
    # Association release
    AR_1 = "AR-1"  # Send A-RELEASE-RQ PDU -> Sta7
    AR_2 = "AR-2"  # Issue A-RELEASE indication primitive -> Sta8
    AR_3 = "AR-3"  # Issue A-RELEASE confirmation primitive, and close transport connection -> Sta1
    AR_4 = "AR-4"  # Issue A-RELEASE-RP PDU and start ARTIM timer -> Sta13
    AR_5 = "AR-5"  # Stop ARTIM timer -> Sta1
    AR_6 = "AR-6"  # Issue P-DATA indication -> Sta7
    AR_7 = "AR-7"  # Issue P-DATA-TF PDU -> Sta8
    AR_8 = "AR-8"  # Issue A-RELEASE indication (release collision):
    #                association-requestor -> Sta9, otherwise -> Sta10
    AR_9 = "AR-9"  # Send A-RELEASE-RP PDU -> Sta11
    AR_10 = "AR-10"  # Issue A-RELEASE confirmation primitive -> Sta12
    # Association abort
    AA_1 = "AA-1"  # Send A-ABORT PDU (service-user source), start (or restart) ARTIM -> Sta13
    AA_2 = "AA-2"  # Stop ARTIM timer if running. Close transport connection -> Sta1
    AA_3 = "AA-3"  # Service-user initiated abort: issue A-ABORT indication, close transport;
    #                otherwise issue A-P-ABORT indication and close transport -> Sta1
    AA_4 = "AA-4"  # Issue A-P-ABORT indication primitive -> Sta1
    AA_5 = "AA-5"  # Stop ARTIM timer -> Sta1
    AA_6 = "AA-6"  # Ignore PDU -> Sta13
    AA_7 = "AA-7"  # Send A-ABORT PDU -> Sta13
    AA_8 = "AA-8"  # Send A-ABORT PDU (service-provider source), issue an A-P-ABORT indication,
    #                and start ARTIM timer -> Sta13


NEXT_STATE: dict[Action, State] = {
    Action.AE_1: State.Sta4,
    Action.AE_2: State.Sta5,
    Action.AE_3: State.Sta6,
    Action.AE_4: State.Sta1,
    Action.AE_5: State.Sta2,
    Action.AE_6: State.Sta3,  # or Sta13 when the service-provider rejects the request
    Action.AE_7: State.Sta6,
    Action.AE_8: State.Sta13,
    Action.DT_1: State.Sta6,
    Action.DT_2: State.Sta6,
    Action.AR_1: State.Sta7,
    Action.AR_2: State.Sta8,
    Action.AR_3: State.Sta1,
    Action.AR_4: State.Sta13,
    Action.AR_5: State.Sta1,
    Action.AR_6: State.Sta7,
    Action.AR_7: State.Sta8,
    Action.AR_8: State.Sta9,  # association-requestor; the acceptor goes to Sta10
    Action.AR_9: State.Sta11,
    Action.AR_10: State.Sta12,
    Action.AA_1: State.Sta13,
    Action.AA_2: State.Sta1,
    Action.AA_3: State.Sta1,
    Action.AA_4: State.Sta1,
    Action.AA_5: State.Sta1,
    Action.AA_6: State.Sta13,
    Action.AA_7: State.Sta13,
    Action.AA_8: State.Sta13,
}
"""The next state each action names. Two actions have a second outcome, in ``OTHER_NEXT_STATE``."""

OTHER_NEXT_STATE: dict[Action, State] = {
    Action.AE_6: State.Sta13,  # A-ASSOCIATE-RQ not acceptable by the service-provider
    Action.AR_8: State.Sta10,  # release collision on the association-acceptor side
}

# PS3.8 table 9-10, row by row as printed in the standard. "." is an empty cell: not allowed.
TABLE_9_10 = """
        Sta1  Sta2  Sta3  Sta4  Sta5  Sta6  Sta7  Sta8  Sta9  Sta10 Sta11 Sta12 Sta13
Evt1    AE-1  .     .     .     .     .     .     .     .     .     .     .     .
Evt2    .     .     .     AE-2  .     .     .     .     .     .     .     .     .
Evt3    .     AA-1  AA-8  .     AE-3  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt4    .     AA-1  AA-8  .     AE-4  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt5    AE-5  .     .     .     .     .     .     .     .     .     .     .     .
Evt6    .     AE-6  AA-8  .     AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-7
Evt7    .     .     AE-7  .     .     .     .     .     .     .     .     .     .
Evt8    .     .     AE-8  .     .     .     .     .     .     .     .     .     .
Evt9    .     .     .     .     .     DT-1  .     AR-7  .     .     .     .     .
Evt10   .     AA-1  AA-8  .     AA-8  DT-2  AR-6  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt11   .     .     .     .     .     AR-1  .     .     .     .     .     .     .
Evt12   .     AA-1  AA-8  .     AA-8  AR-2  AR-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt13   .     AA-1  AA-8  .     AA-8  AA-8  AR-3  AA-8  AA-8  AR-10 AR-3  AA-8  AA-6
Evt14   .     .     .     .     .     .     .     AR-4  AR-9  .     .     AR-4  .
Evt15   .     .     AA-1  AA-2  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  .
Evt16   .     AA-2  AA-3  .     AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-2
Evt17   .     AA-5  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AR-5
Evt18   .     AA-2  .     .     .     .     .     .     .     .     .     .     AA-2
Evt19   .     AA-1  AA-8  .     AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-7
"""


def _parse_table(text: str) -> dict[tuple[Event, State], tuple[Action, State]]:
    lines = [line.split() for line in text.strip().splitlines()]
    states = [State[name] for name in lines[0]]
    table: dict[tuple[Event, State], tuple[Action, State]] = {}
    for row in lines[1:]:
        event = Event[row[0]]
        if len(row) != len(states) + 1:
            raise ValueError(f"table 9-10 row {row[0]} has {len(row) - 1} cells")
        for state, cell in zip(states, row[1:], strict=True):
            if cell != ".":
                action = Action(cell)
                table[(event, state)] = (action, NEXT_STATE[action])
    return table


TRANSITIONS: dict[tuple[Event, State], tuple[Action, State]] = _parse_table(TABLE_9_10)
"""Every non-empty cell of table 9-10: (event, current state) -> (action, next state)."""


def lookup(event: Event, state: State) -> tuple[Action, State] | None:
    """The action and next state for ``event`` in ``state``; None when the standard has none."""
    return TRANSITIONS.get((event, state))
