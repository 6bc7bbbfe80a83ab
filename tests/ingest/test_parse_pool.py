"""The parse pool: started on demand (the daemon starts it), parses exactly as in-process, stopped cleanly."""

from __future__ import annotations

import pytest

from frontdesk.ingest import parse_pool
from frontdesk.settings import ConfigError, load_settings
from _ingest_mail import mail, smtp_envelope


@pytest.mark.parametrize("value", ["two", "-1", "1.5"])
def test_a_parse_worker_count_that_is_not_a_whole_number_of_zero_or_more_is_a_configuration_error(value):
    with pytest.raises(ConfigError, match="FRONTDESK_PARSE_WORKERS"):
        load_settings(environ={"FRONTDESK_SECRET_KEY": "k", "FRONTDESK_PARSE_WORKERS": value})


@pytest.mark.parametrize(("value", "workers"), [("", None), ("0", 0), (" 3 ", 3)])
def test_parse_workers_default_to_one_per_core_and_zero_means_in_process(tmp_path, value, workers):
    settings = load_settings(environ={"FRONTDESK_SECRET_KEY": "k", "FRONTDESK_DATA_DIR": str(tmp_path),
                                      "FRONTDESK_PARSE_WORKERS": value})
    assert settings.parse_workers == workers


async def test_a_started_pool_parses_a_batch_as_in_process_parsing_would_and_stops():
    raw = mail(message_id="pooled-1@example.com", attachments=[("a.txt", "text/plain", b"attached")])
    envelope = smtp_envelope()
    assert not parse_pool.use_pool(10)  # nothing started: tests and tools parse in-process
    assert await parse_pool.start(1) == 1
    try:
        assert parse_pool.use_pool(parse_pool.MIN_BATCH) and not parse_pool.use_pool(1)
        pooled = await parse_pool.parse_off_loop(raw, envelope=envelope, raw_blob="b", pooled=True)
        here = await parse_pool.parse_off_loop(raw, envelope=envelope, raw_blob="b", pooled=False)
        assert pooled == here and pooled.external_id == "pooled-1@example.com"
    finally:
        parse_pool.shutdown()
    assert not parse_pool.use_pool(10)
