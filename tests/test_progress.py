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
    for part in ("failed 1", "100 in", "20 out", "15 thinking", "0.5000 CNY", "in flight 7/32"):
        assert part in text, (part, text)
    p.close()


def test_no_display_means_log_lines_not_a_bar(monkeypatch, caplog):
    monkeypatch.setattr(progress_mod, "_has_display", lambda: False)
    caplog.set_level(logging.INFO, logger="batchframe")
    p = Progress(total=5, initial=0, enabled=True, currency=None, log_every_s=0.0)
    assert p._bar is None
    p.add(3, failed=False, prompt=1, completion=1, reasoning=None, cost=None)
    p.tick(concurrency=8, in_flight=2)
    assert "3/5 rows" in caplog.text and "in flight 2/8" in caplog.text and "CNY" not in caplog.text


def test_progress_false_is_silent(monkeypatch, caplog):
    monkeypatch.setattr(progress_mod, "_has_display", lambda: True)
    caplog.set_level(logging.INFO, logger="batchframe")
    p = Progress(total=5, initial=0, enabled=False, currency=None, log_every_s=0.0)
    p.add(3, failed=False, prompt=1, completion=1, reasoning=None, cost=None)
    p.tick(concurrency=8, in_flight=2)
    assert p._bar is None and caplog.text == ""


def test_without_any_logging_set_up_the_lines_go_to_stderr(monkeypatch, capsys):
    """A script or ETL job that configured no logging still sees the periodic lines (on stderr)."""
    monkeypatch.setattr(progress_mod, "_has_display", lambda: False)
    monkeypatch.setattr(progress_mod, "_listened", lambda: False)
    p = Progress(total=5, initial=0, enabled=True, currency="CNY", log_every_s=0.0)
    p.add(2, failed=False, prompt=1, completion=1, reasoning=None, cost=0.1)
    p.tick(concurrency=8, in_flight=3)
    err = capsys.readouterr().err
    assert "batchframe: 2/5 rows" in err and "in flight 3/8" in err


def test_a_narrow_terminal_keeps_the_bar_and_the_in_flight_count(monkeypatch):
    """At 120 columns the bar keeps its width and the in-flight count is not cut off."""
    import io

    from tqdm import tqdm

    p = Progress(total=1_000_000, initial=0, enabled=False, currency="CNY")
    p.tokens_in, p.tokens_out, p.tokens_thinking, p.cost, p.failed = 12_345_678, 2_345_678, 1_234_567, 1234.5678, 999
    p.concurrency = 10_000
    line = tqdm.format_meter(n=123_456, total=1_000_000, elapsed=3600.0, ncols=120, prefix="batchframe",
                             unit="row", bar_format=progress_mod.BAR_FORMAT, postfix=p._postfix(9_876),
                             rate=34.2)
    assert len(line) <= 120
    bar = line.split("|")[1]
    assert len(bar) >= 10, line
    assert "in flight 9876/10000" in line, line
