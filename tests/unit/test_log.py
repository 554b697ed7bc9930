"""Logging: journald fields when stderr is the journal, plain lines otherwise."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from vhbackup import log as vlog


@pytest.fixture
def sent():
    messages: list[tuple[str, dict]] = []
    saved = dict(vlog._context)
    vlog._context.clear()
    logger = logging.getLogger("vhbackup.test")
    logger.handlers[:] = [vlog.JournalHandler(sender=lambda message, **f: messages.append((message, f)))]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, messages
    vlog._context.clear()
    vlog._context.update(saved)


def test_journal_handler_sends_identifier_priority_and_fields(sent):
    logger, messages = sent
    vlog.bind(run_id="20261128-020000-a1b2", action="backup")
    logger.info("snapshot %s saved", "abcd1234",
                extra=vlog.fields(vlog.SNAPSHOT_SAVED, snapshot_id="abcd1234ef", service=("hub", "agent"),
                                  skipped=None))
    logger.warning("careful")
    logger.error("broken")
    logger.debug("detail")
    (msg, f), (_, warn), (_, err), (_, debug) = messages
    assert msg == "snapshot abcd1234 saved"
    assert f["SYSLOG_IDENTIFIER"] == "vhbackup"
    assert f["PRIORITY"] == "6" and warn["PRIORITY"] == "4" and err["PRIORITY"] == "3" and debug["PRIORITY"] == "7"
    assert f["VHBACKUP_RUN_ID"] == "20261128-020000-a1b2" and f["VHBACKUP_ACTION"] == "backup"
    assert f["VHBACKUP_SNAPSHOT_ID"] == "abcd1234ef"
    assert f["VHBACKUP_SERVICE"] == "hub,agent"
    assert f["MESSAGE_ID"] == vlog.SNAPSHOT_SAVED
    assert "VHBACKUP_SKIPPED" not in f
    assert warn["VHBACKUP_RUN_ID"] == "20261128-020000-a1b2" and "MESSAGE_ID" not in warn


def test_fields_are_upper_case_strings():
    out = vlog.fields(None, count=3, names=["a", "b"])["fields"]
    assert out == {"VHBACKUP_COUNT": "3", "VHBACKUP_NAMES": "a,b"}
    assert all(k.isupper() for k in out)


def test_message_ids_are_distinct_128_bit_hex():
    ids = [vlog.RUN_STARTED, vlog.RUN_FINISHED, vlog.RUN_FAILED, vlog.SNAPSHOT_SAVED, vlog.ALERT_SENT]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


CHECK = "import sys; sys.path.insert(0, sys.argv[1]); from vhbackup import log; print(log.stderr_is_journal())"


def journal_check(stderr, journal_stream: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal_stream is not None:
        env["JOURNAL_STREAM"] = journal_stream
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.run([sys.executable, "-c", CHECK, root], stderr=stderr, stdout=subprocess.PIPE,
                          env=env, text=True, check=True).stdout.strip()


def test_stderr_is_journal_only_when_dev_and_inode_match(tmp_path):
    target = tmp_path / "stderr"
    target.write_text("")
    st = os.stat(target)
    other = os.stat(tmp_path)
    with open(target, "w") as fh:
        assert journal_check(fh, f"{st.st_dev}:{st.st_ino}") == "True"
        assert journal_check(fh, f"{st.st_dev}:{other.st_ino}") == "False"
        assert journal_check(fh, f"{st.st_dev + 1}:{st.st_ino}") == "False"
        assert journal_check(fh, None) == "False"
        assert journal_check(fh, "") == "False"
        assert journal_check(fh, "garbage") == "False"


def test_terminal_format_and_quiet(capsys):
    vlog.setup(journal=False)
    logger = logging.getLogger("vhbackup")
    logger.info("plain")
    logger.warning("hmm")
    logger.error("bad")
    vlog.setup(quiet=True, journal=False)
    logger.info("hidden")
    logger.warning("shown")
    logger.handlers.clear()
    err = capsys.readouterr().err.splitlines()
    assert err == ["plain", "vhbackup: warning: hmm", "vhbackup: error: bad", "vhbackup: warning: shown"]
