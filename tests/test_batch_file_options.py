"""Batch File's options (checked, naming the option), its endpoints, and the hash across modes."""

from __future__ import annotations

import pytest

from batchframe import ConfigError
from batchframe.batchfile.options import file_base_url, hash_base_url, poll_interval
from batchframe.pipeline.options import resolve, resolve_offline

BATCH = "https://batch.dashscope.aliyuncs.com/compatible-mode/v1"
PLAIN = "https://dashscope.aliyuncs.com/compatible-mode/v1"
INTL_BATCH = "https://batch.dashscope-intl.aliyuncs.com/compatible-mode/v1"
INTL = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"


def opts(**kw):
    kw.setdefault("model", "qwen-plus")
    kw.setdefault("base_url", "http://127.0.0.1:9/v1")
    return resolve("text", **kw)


@pytest.mark.parametrize(("kw", "named"), [
    ({"mode": "files"}, "mode="),
    ({"mode": "file"}, "checkpoint="),                       # the checkpoint records the job
    ({"mode": "file", "checkpoint": "x", "completion_window": "12h"}, "completion_window="),
    ({"mode": "file", "checkpoint": "x", "completion_window": "15d"}, "completion_window="),
    ({"mode": "file", "checkpoint": "x", "completion_window": 24}, "completion_window="),
    ({"mode": "file", "checkpoint": "x", "poll_s": 0}, "poll_s="),
    ({"mode": "file", "checkpoint": "x", "poll_s": "1m"}, "poll_s="),
    ({"mode": "auto", "auto_file_rows": 0}, "auto_file_rows="),
    ({"mode": "file", "checkpoint": "x", "file_max_lines": 50_001}, "file_max_lines="),
    ({"mode": "file", "checkpoint": "x", "file_max_lines": 0}, "file_max_lines="),
    ({"mode": "file", "checkpoint": "x", "file_max_bytes": 500 * 2 ** 20 + 1}, "file_max_bytes="),
    ({"mode": "file", "checkpoint": "x", "file_max_bytes": 10}, "file_max_bytes="),
    ({"mode": "file", "checkpoint": "x", "keep_remote_files": "yes"}, "keep_remote_files="),
    ({"file_test": True}, "file_test="),
    ({"mode": "file", "checkpoint": "x", "file_test": 1}, "file_test="),
    ({"file_fallback_s": 60}, "file_fallback_s="),
    ({"mode": "file", "checkpoint": "x", "file_fallback_s": -1}, "file_fallback_s="),
    ({"mode": "file", "checkpoint": "x", "file_fallback_s": 600, "deadline_s": 300}, "file_fallback_s="),
])
def test_bad_options_name_themselves(kw, named):
    with pytest.raises(ConfigError, match=named):
        opts(**kw)


def test_defaults_and_a_good_file_mode():
    o = opts()
    assert o.file.mode == "chat" and o.file.completion_window == "24h" and o.file.max_lines == 50_000
    f = opts(mode="file", checkpoint="x", completion_window="14d", file_max_lines=10, poll_s=0.5)
    assert (f.file.mode, f.file.completion_window, f.file.max_lines, f.file.poll_s) == ("file", "14d", 10, 0.5)
    assert f.file.endpoint == "/v1/chat/completions"


def test_file_test_uses_the_free_model_and_its_url():
    o = opts(mode="file", checkpoint="x", file_test=True)
    assert o.spec.model == "batch-test-model" and o.file.endpoint == "/v1/chat/ds-test"
    assert o.file.line_limit == 100 and o.prices.cost(1000, 1000) == 0.0
    assert o.spec.prefix != opts(mode="file", checkpoint="x").spec.prefix  # test answers are never reused


@pytest.mark.parametrize(("given", "hashed", "files"), [
    (None, BATCH, PLAIN),                # the default endpoint
    (BATCH, BATCH, PLAIN),               # the Batch Chat URL given: the files are on the plain host
    (PLAIN, BATCH, PLAIN),
    (INTL, INTL_BATCH, INTL),
    (INTL_BATCH, INTL_BATCH, INTL),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
])
def test_endpoints_and_one_hash_for_both_modes(given, hashed, files):
    kw = {"model": "qwen-plus", "temperature": 0.1, **({"base_url": given} if given else {})}
    chat = resolve_offline("text", **kw)
    file = resolve_offline("text", mode="file", checkpoint="x", **kw)
    auto = resolve_offline("text", mode="auto", **kw)
    assert file.spec.base_url == auto.spec.base_url == hashed
    assert file_base_url(file.spec.base_url) == files
    if given != PLAIN and given != INTL:  # the Batch Chat URL hashes alike in both modes
        assert file.spec.prefix == chat.spec.prefix == auto.spec.prefix
    assert hash_base_url(hashed) == hashed


def test_poll_interval_by_endpoint():
    assert poll_interval(opts(mode="file", checkpoint="x").file, PLAIN) == (60.0, True)
    assert poll_interval(opts(mode="file", checkpoint="x").file, "http://127.0.0.1:1/v1") == (5.0, False)
    assert poll_interval(opts(mode="file", checkpoint="x", poll_s=2).file, PLAIN) == (2.0, True)
