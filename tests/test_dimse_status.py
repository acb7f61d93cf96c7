"""Status codes -> category and meaning (PS3.7 annex C, PS3.4 service statuses)."""

from __future__ import annotations

import pytest

from harmony_dimse.dimse.status import (
    StatusInfo,
    describe_status,
    status_category,
    status_meaning,
)

CATEGORIES = [
    (0x0000, "success"),
    (0xFF00, "pending"),
    (0xFF01, "pending"),
    (0xFE00, "cancel"),
    (0x0001, "warning"),
    (0x0107, "warning"),
    (0x0116, "warning"),
    (0xB000, "warning"),
    (0xB006, "warning"),
    (0xB007, "warning"),
    (0xB123, "warning"),
    (0x0105, "failure"),
    (0x0106, "failure"),
    (0x0110, "failure"),
    (0x0111, "failure"),
    (0x0112, "failure"),
    (0x0114, "failure"),
    (0x0115, "failure"),
    (0x0117, "failure"),
    (0x0118, "failure"),
    (0x0119, "failure"),
    (0x0120, "failure"),
    (0x0121, "failure"),
    (0x0122, "failure"),
    (0x0123, "failure"),
    (0x0124, "failure"),
    (0x0210, "failure"),
    (0x0211, "failure"),
    (0x0212, "failure"),
    (0x0213, "failure"),
    (0xA700, "failure"),
    (0xA7FF, "failure"),
    (0xA701, "failure"),
    (0xA702, "failure"),
    (0xA801, "failure"),
    (0xA900, "failure"),
    (0xA9AB, "failure"),
    (0xC000, "failure"),
    (0xCFFF, "failure"),
    (0xC211, "failure"),
    (0x1234, "failure"),  # defined nowhere: treated as failure
    (0xFF02, "failure"),
]


@pytest.mark.parametrize(("code", "category"), CATEGORIES)
def test_category(code: int, category: str) -> None:
    assert status_category(code) == category
    assert describe_status(code).category == category


MEANINGS = [
    # (code, command, words expected in the meaning, case-insensitive)
    (0x0000, None, "success"),
    (0x0000, "C-MOVE", "no failures"),
    (0x0110, None, "processing failure"),
    (0x0111, "C-STORE", "duplicate sop instance"),
    (0x0122, "C-FIND", "sop class not supported"),
    (0x0124, None, "not authorized"),
    (0x0211, None, "unrecognized operation"),
    (0x0213, None, "resource limitation"),
    (0xA700, "C-STORE", "out of resources"),
    (0xA7FE, "C-STORE", "out of resources"),
    (0xA900, "C-STORE", "data set does not match sop class"),
    (0xA9FF, "C-STORE", "data set does not match sop class"),
    (0xC000, "C-STORE", "cannot understand"),
    (0xC123, "C-STORE-RSP", "cannot understand"),
    (0xB000, "C-STORE", "coercion"),
    (0xB006, "c-store", "elements discarded"),
    (0xB007, "C_STORE_RSP", "does not match sop class"),
    (0xA700, "C-FIND", "out of resources"),
    (0xA900, "C-FIND", "identifier does not match"),
    (0xC001, "C-FIND", "unable to process"),
    (0xFF00, "C-FIND", "matches are continuing"),
    (0xFF01, "C-FIND", "optional keys were not supported"),
    (0xFE00, "C-FIND", "cancel"),
    (0xA701, "C-MOVE", "unable to calculate number of matches"),
    (0xA702, "C-MOVE", "unable to perform sub-operations"),
    (0xA801, "C-MOVE", "move destination unknown"),
    (0xA900, "C-MOVE", "identifier does not match"),
    (0xC512, "C-MOVE", "unable to process"),
    (0xB000, "C-MOVE", "one or more failures"),
    (0xFF00, "C-MOVE", "sub-operations are continuing"),
    (0xFE00, "C-MOVE", "terminated due to a cancel"),
    (0xA701, "C-GET", "unable to calculate"),
    (0xB000, "C-GET-RSP", "one or more failures"),
    (0xC000, "C-GET", "unable to process"),
    (0xA801, None, "move destination unknown"),  # no command: any service naming the code
    (0xA7AA, None, "out of resources"),
    (0xCABC, None, "cannot understand"),
    (0xFF00, None, "pending"),
    (0x1234, None, "unknown failure status 0x1234"),
    (0xB123, "C-FIND", "unknown warning status 0xb123"),
    (0xA801, "C-GET", "unknown failure status 0xa801"),  # A801 is a C-MOVE status only
]


@pytest.mark.parametrize(("code", "command", "words"), MEANINGS)
def test_meaning(code: int, command: str | None, words: str) -> None:
    assert words in status_meaning(code, command).lower()


def test_general_meaning_for_n_services_and_unknown_commands() -> None:
    assert "no such sop instance" in status_meaning(0x0112, "N-GET").lower()
    assert "no such argument" in status_meaning(0x0114, "whatever").lower()


def test_describe_status() -> None:
    info = describe_status(0xA801, "C-MOVE")
    assert info == StatusInfo(0xA801, "failure", "Refused: move destination unknown")
    assert not info.is_success and info.is_final and not info.is_pending
    assert str(info) == "0xA801 (failure): Refused: move destination unknown"
    pending = describe_status(0xFF01, "C-FIND")
    assert pending.is_pending and not pending.is_final
    assert describe_status(0).is_success
