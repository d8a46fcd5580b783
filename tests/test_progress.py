"""The progress display: a bar when there is a display, periodic log lines when there is none."""

from __future__ import annotations

import logging

import batchframe.pipeline.progress as progress_mod
from batchframe.pipeline.progress import Progress


def test_bar_counts_rows_tokens_cost_and_concurrency(monkeypatch):
    monkeypatch.setattr(progress_mod, "_has_display", lambda: True)
    p = Progress(total=10, initial=4, enabled=True, currency="CNY")  # 4 rows came from a checkpoint
    assert p._bar is not None and p._bar.n == 4
    p.add(2, failed=False, prompt=100, completion=20, reasoning=15, cost=0.5)
    p.add(1, failed=True, prompt=None, completion=None, reasoning=None, cost=0.0)
    p._last_refresh = -1e9
    p.tick(concurrency=32, in_flight=7)
    text = p._bar.postfix
    assert p._bar.n == 7 and p.failed == 1
    for part in ("failed=1", "in=100", "out=20", "thinking=15", "cost=0.5000 CNY", "in flight=7/32"):
        assert part in text, (part, text)
    p.close()


def test_no_display_means_log_lines_not_a_bar(monkeypatch, caplog):
    monkeypatch.setattr(progress_mod, "_has_display", lambda: False)
    caplog.set_level(logging.INFO, logger="batchframe")
    p = Progress(total=5, initial=0, enabled=True, currency=None, log_every_s=0.0)
    assert p._bar is None
    p.add(3, failed=False, prompt=1, completion=1, reasoning=None, cost=None)
    p.tick(concurrency=8, in_flight=2)
    assert "3/5 rows" in caplog.text and "in flight=2/8" in caplog.text and "cost" not in caplog.text


def test_progress_false_is_silent(monkeypatch, caplog):
    monkeypatch.setattr(progress_mod, "_has_display", lambda: True)
    caplog.set_level(logging.INFO, logger="batchframe")
    p = Progress(total=5, initial=0, enabled=False, currency=None, log_every_s=0.0)
    p.add(3, failed=False, prompt=1, completion=1, reasoning=None, cost=None)
    p.tick(concurrency=8, in_flight=2)
    assert p._bar is None and caplog.text == ""
