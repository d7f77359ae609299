"""Relaxing one session (sessions.cfg comments, docs/rules-of-engagement.md): AllowUnknownMsgFields=Y and
ValidateUserDefinedFields=N in one session's section let that session's undefined tags through and
leave every other session strict. Its own module: the strict stack of test_strictness.py must be gone
first (QuickFIX keeps one registry of sessions per process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Stack, run_stack
from tests.e2e.test_strictness import (
    INVALID_TAG_NUMBER,
    UNDEFINED_STANDARD,
    UNDEFINED_USER,
    acknowledged,
    answer_to,
    assert_reject,
    log_on,
    order,
)


def relaxed_sessions_cfg(tmp: Path, comp_id: str) -> Path:
    """The shipped sessions.cfg with both relaxations in `comp_id`'s section only."""
    text = (ROOT / "sessions.cfg").read_text()
    section = f"TargetCompID={comp_id}\n"
    assert text.count(section) == 1
    path = tmp / "sessions.cfg"
    path.write_text(text.replace(section, section + "AllowUnknownMsgFields=Y\nValidateUserDefinedFields=N\n"))
    return path


@pytest.fixture
def relaxed_stack(tmp_path: Path) -> Iterator[Stack]:
    yield from run_stack(tmp_path, f"sqlite:///{tmp_path / 'journal.db'}",
                         sessions_file=relaxed_sessions_cfg(tmp_path, "CLIENT2"))


def test_one_session_can_be_relaxed_alone(relaxed_stack: Stack) -> None:
    relaxed = log_on(relaxed_stack.acceptor_port, "FIX.4.2")
    strict = log_on(relaxed_stack.acceptor_port, "FIX.4.4")
    try:
        for tag in (UNDEFINED_USER, UNDEFINED_STANDARD):
            taken = acknowledged(relaxed, [(tag, "1")])
            assert (taken.get(35), taken.get(150)) == ("8", "0"), taken
            cl, seq = order(strict, [(tag, "1")])
            assert_reject(answer_to(strict, seq, cl), seq, tag, INVALID_TAG_NUMBER)
    finally:
        relaxed.close()
        strict.close()
