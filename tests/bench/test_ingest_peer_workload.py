"""The peer benchmark's workload and scoring (bench/ingest_peer.py): its truth must be right for the accuracy to mean anything."""

import email
import email.policy
from email.parser import BytesHeaderParser
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ingest_peer", BENCH / "ingest_peer.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("ingest_peer", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mails(bench):
    return bench.generate_workload(60, seed=3)


def test_the_workload_is_deterministic(bench, mails):
    assert [mail.raw for mail in bench.generate_workload(60, seed=3)] == [mail.raw for mail in mails]
    assert [mail.raw for mail in bench.generate_workload(60, seed=4)] != [mail.raw for mail in mails]


def test_every_reply_answers_an_earlier_mail_of_its_own_thread_in_its_headers(mails):
    by_id = {mail.message_id: mail for mail in mails}
    assert len(by_id) == len(mails)
    for mail in mails:
        parsed = BytesHeaderParser(policy=email.policy.default).parsebytes(mail.raw)
        assert parsed["Message-ID"] == f"<{mail.message_id}>"
        if mail.parent is None:
            assert mail.thread == mail.message_id
            assert parsed["In-Reply-To"] is None and parsed["References"] is None
            continue
        assert by_id[mail.parent].thread == mail.thread
        named = " ".join(str(parsed[h] or "") for h in ("In-Reply-To", "References"))
        assert f"<{mail.parent}>" in named  # whichever header it kept names its parent
        if parsed["References"] is not None:
            assert str(parsed["References"]).split()[0] == f"<{mail.thread}>"


def test_each_body_shape_is_well_formed_mime(mails):
    seen = {}
    for mail in mails:
        kind = BytesHeaderParser(policy=email.policy.default).parsebytes(mail.raw).get_content_type()
        if kind not in seen:
            seen[kind] = email.message_from_bytes(mail.raw, policy=email.policy.default)
            assert not any(part.defects for part in seen[kind].walk()), mail.message_id
    assert set(seen) == {"text/plain", "text/html", "multipart/alternative", "multipart/mixed"}
    attachment = next(seen["multipart/mixed"].iter_attachments())
    assert attachment.get_filename() and len(attachment.get_content()) > 1000
    plain = seen["multipart/alternative"].get_body(("plain",)).get_content()
    assert plain.strip() and "\ufffd" not in plain


def test_the_workload_has_the_cases_the_issue_asks_for(bench, mails):
    facts = bench.workload_facts(mails)
    assert facts["new"] == 60
    assert facts["replies"] >= facts["new"]
    for case in ("replies to replies", "References only", "In-Reply-To only", "before their parent",
                 "with an attachment", "HTML only"):
        assert facts[case] > 0, case


def test_accuracy_counts_the_mails_off_their_threads_ticket(bench):
    truth = {"a1": "a1", "a2": "a1", "a3": "a1", "b1": "b1", "b2": "b1", "c1": "c1"}
    assert bench.threading_accuracy(truth, {"a1": 1, "a2": 1, "a3": 1, "b1": 2, "b2": 2, "c1": 3}) == (1.0, 3)
    # A reply stored before its parent got a ticket of its own; b was merged into a's ticket;
    # c was never stored.
    placed = {"a1": 1, "a2": 9, "a3": 1, "b1": 1, "b2": 1}
    accuracy, whole = bench.threading_accuracy(truth, placed)
    assert accuracy == pytest.approx(2 / 6)
    assert whole == 0
