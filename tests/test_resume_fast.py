"""The fast resume paths give exactly what the general ones give.

- ``RequestSpec.text_rids`` (hashing a text row without building its messages) equals
  ``hasher()(user_messages(system, text))`` bit for bit, so checkpoints written before it resume;
- ``row_texts`` (messages built on access) equals ``row_messages``: same messages, same row errors;
- ``Reuse`` matches one run's uncompacted parts (keys in frame order) and a compacted checkpoint
  (sorted by key) without a hash join, and still gets every row's stored columns right.
"""

from __future__ import annotations

import random

import numpy as np
import orjson
import pandas as pd
import pyarrow.compute as pc
import pytest

import batchframe
from batchframe.checkpoint.store import CheckpointStore
from batchframe.rows.messages import OneTurn, row_messages, row_texts
from batchframe.records import Result
from batchframe.rows.requests import RequestSpec, user_messages
from batchframe.checkpoint.reuse import Reuse, Reused
from batchframe import ConfigError

from conftest import frame


class Sub(str):
    """A str subclass: takes the careful path."""


MARKER = "\x00batchframe-text\x00"  # the split marker text_rids uses: as a text and in a system prompt
TRICKY = [
    "plain", "", " ", 'quote " inside "', "back\\slash \\n \\u0000 \\\\", "\\", '"', "\"\\\"",
    "ctrl \x00\x01\x08\x0b\x0c\x1b\x1f\x7f\x80\x9f", "tab\tnew\nline\rcr", "é ß ø 中文 العربية",
    "emoji 😀 👍🏽 👨‍👩‍👧 🏳️‍🌈", "\u2028\u2029 \ufeff \ufffd", "</script><!--", "{\"content\":\"x\",\"role\":\"user\"}",
    "x" * 5000, MARKER, f'","role":"user"}}]{MARKER}', "\U0010ffff", None, Sub("subclass"),
    np.str_("numpy str"),
]


def general(spec: RequestSpec, system, texts):
    rid = spec.hasher()
    return [rid(user_messages(system, t)) if t is not None else None for t in texts]


@pytest.mark.parametrize("system", [None, "be terse", 'sys "q" \\ 😀 \x00', MARKER, f"a {MARKER} b", ""])
@pytest.mark.parametrize("params", [{}, {"temperature": 0.2, "response_format": {"type": "json_object"},
                                         "stop": ["\n", "é"], "enable_thinking": False}])
def test_text_rids_equal_the_general_hash(system, params):
    spec = RequestSpec(base_url="http://127.0.0.1:1/v1/", model="qwen-plus", params=params)
    assert spec.text_rids(TRICKY, system) == general(spec, system, TRICKY)


def test_text_rids_golden_values():
    """Computed by the general path before text_rids existed: checkpoints from then still resume."""
    spec = RequestSpec(base_url="http://x/v1", model="qwen-plus", params={"temperature": 0})
    text = 'héllo "q" \\ 😀\n'
    assert spec.text_rids([text, None], None) == ["236285daea259c2b3085a5a6b8b2ce47", None]
    assert spec.text_rids([text], "be terse") == ["2901b49d8ed0d35b6f891ee6fafb2aaa"]


def test_text_rids_give_no_request_where_the_general_path_refuses():
    """Text that is not valid Unicode cannot be sent: no hash (the rows stage fails that row)."""
    spec = RequestSpec(base_url="http://x/v1", model="qwen-plus")
    with pytest.raises(orjson.JSONEncodeError):
        general(spec, None, ["lone \ud800 surrogate"])
    assert spec.text_rids(["ok", "lone \ud800 surrogate"], None)[1] is None


def test_text_rids_random_strings():
    rng = random.Random(7)
    alphabet = [chr(c) for c in (*range(0, 128), 0xE9, 0x4E2D, 0x2028, 0xFEFF, 0x1F600, 0x10FFFF)]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(2000)]
    spec = RequestSpec(base_url="http://x/v1", model="m", params={"seed": 1})
    for system in (None, "s"):
        assert spec.text_rids(texts, system) == general(spec, system, texts)


MESSY = ["a", None, np.nan, pd.NA, "", "   ", "\t\n", Sub("sub"), Sub("  "), "b", 'q "x"']


@pytest.mark.parametrize("system", [None, "sys"])
@pytest.mark.parametrize("dtype", [object, "string", "str"])
def test_row_texts_match_row_messages(system, dtype):
    values = MESSY if dtype is object else [v for v in MESSY if not isinstance(v, Sub)]
    index = [f"r{i}" for i in range(len(values))]
    df = pd.DataFrame({"text": pd.Series(values, dtype=dtype, index=index), "n": range(len(values))},
                      index=index)
    assert df["text"].notna().sum() == (8 if dtype is object else 6)
    for kw in (dict(prompt_col="text", template=None), dict(prompt_col=None, template="{text} / {n}")):
        msgs, errors = row_messages(df, messages_col=None, system=system, **kw)
        lazy, lazy_errors = row_texts(df, system=system, **kw)
        assert isinstance(lazy, OneTurn) and len(lazy) == len(msgs)
        assert list(lazy) == msgs and lazy[1:4] == msgs[1:4]
        assert lazy_errors == errors
        # None, NaN, NA, "" and blanks (a blank str subclass too) send nothing, as prompt or field
        assert set(errors) == ({1, 2, 3, 4, 5, 6, 8} if dtype is object else {1, 2, 3, 4, 5, 6})
        spec = RequestSpec(base_url="http://x/v1", model="m")
        assert spec.text_rids(lazy.texts, system) == [spec.hasher()(m) if m is not None else None for m in msgs]


def test_row_texts_raise_what_row_messages_raise():
    df = pd.DataFrame({"text": ["a", 3], "n": [1, 2]})
    for kw in (dict(prompt_col="text", template=None), dict(prompt_col="nope", template=None),
               dict(prompt_col=None, template="{missing}"), dict(prompt_col=None, template="none"),
               dict(prompt_col="text", template="{n}"), dict(prompt_col=None, template=None)):
        with pytest.raises(ConfigError) as general_error:
            row_messages(df, messages_col=None, system=None, **kw)
        with pytest.raises(ConfigError) as fast_error:
            row_texts(df, system=None, **kw)
        assert str(fast_error.value) == str(general_error.value)


# ---- Reuse: the layouts it matches without a hash join --------------------------------------------

SPEC = RequestSpec(base_url="http://x/v1", model="m")


def write(path, texts: dict, *, part_rows=7, compact=False, status="ok"):
    """One run writing key -> text's answer ("<key> says <text>": a row given another key's stored
    columns shows) in the given order."""
    rid = SPEC.hasher()
    with CheckpointStore(path, part_rows=part_rows) as store:
        for key, text in texts.items():
            res = Result(rid(user_messages(None, text)), status, response=f"{key} says {text}",
                         prompt_tokens=len(text), attempts=1,
                         error=None if status == "ok" else "bad request", error_code=None if status == "ok" else "x")
            store.write([key], res)
        if compact:
            store.flush()
            store.compact()


def reuse(path, keys, texts, retry=False, whole=True):
    """The reuse decision for one batch of rows (an in-memory frame reads the whole checkpoint)."""
    rids = SPEC.text_rids(texts, None)
    found = Reuse(path, retry, whole=whole).lookup(keys, rids)
    return found if found is not None else Reused(np.zeros(len(keys), dtype=bool), None, 0)


@pytest.fixture
def no_hash_join(monkeypatch):
    """Counts Reuse's hash joins on keys (not the lookups of identical requests by hash)."""
    calls = []
    real = pc.index_in

    def index_in(values, value_set, **kw):
        if len(value_set) and str(value_set[0])[:2] in ("i:", "s:"):
            calls.append(1)
        return real(values, value_set, **kw)

    monkeypatch.setattr(pc, "index_in", index_in)
    yield calls


def expect(r: Reuse, keys, texts, reused, owners=None):
    """``owners``: the key whose stored row answers each row (default: its own)."""
    assert r.use.tolist() == list(reused) and r.count == sum(reused)
    want = [f"{k} says {t}" if u else None for k, t, u in zip(owners or keys, texts, reused)]
    if r.stored is None:
        assert not any(reused)
        return
    got = [None if v is pd.NA else v for v in r.stored["response"].tolist()]
    assert got == want
    assert str(r.stored["response"].dtype) == "string" and str(r.stored["prompt_tokens"].dtype) == "Int64"
    assert r.stored["prompt_tokens"].tolist() == [len(t) if u else pd.NA for t, u in zip(texts, reused)]


# Stored permanent failures are found by key only (never as another key's identical request): a row
# matched to the wrong stored row shows as not reused, where an ok row would be rescued by its hash.
@pytest.mark.parametrize("status", ["ok", "failed"])
@pytest.mark.parametrize("compact", [False, True])
def test_reuse_matches_both_layouts_without_a_hash_join(tmp_path, compact, status, no_hash_join):
    n = 23  # > 10: "i:10" sorts before "i:2", so a compacted checkpoint is not in frame order
    keys = [f"i:{i}" for i in range(n)]
    texts = [f"text {i}" for i in range(n)]
    write(tmp_path / "ck", dict(zip(keys, texts)), compact=compact, status=status)
    expect(reuse(tmp_path / "ck", keys, texts), keys, texts, [True] * n)
    edited = texts[:5] + ["edited"] + texts[6:]
    expect(reuse(tmp_path / "ck", keys, edited), keys, edited, [i != 5 for i in range(n)])
    # a shuffled frame: matched by sorting both
    order = list(range(n))
    random.Random(1).shuffle(order)
    expect(reuse(tmp_path / "ck", [keys[i] for i in order], [texts[i] for i in order]),
           [keys[i] for i in order], [texts[i] for i in order], [True] * n)
    assert not no_hash_join
    # more rows than keys (a later write of key 3): the hash join, latest row first
    write(tmp_path / "ck", {"i:3": "text 3 again"}, compact=False, status=status)
    again = texts[:3] + ["text 3 again"] + texts[4:]
    expect(reuse(tmp_path / "ck", keys, again), keys, again, [True] * n)
    assert len(no_hash_join) == 1
    # the frame grows by two rows, answered by later runs: a compacted part plus a small one, in
    # either order (parts are read by name: the later part may come first)
    write(tmp_path / "ck", {"i:23": "text 23"}, compact=False, status=status)
    with CheckpointStore(tmp_path / "ck") as store:
        store.compact()  # everything merged: one row per key again
    write(tmp_path / "ck", {"i:24": "text 24"}, compact=False, status=status)
    more, more_keys = again + ["text 23", "text 24"], keys + ["i:23", "i:24"]
    expect(reuse(tmp_path / "ck", more_keys, more), more_keys, more, [True] * (n + 2))
    assert len(no_hash_join) == 1


@pytest.mark.parametrize("status", ["ok", "failed"])
def test_reuse_permutation_of_unsorted_parts(tmp_path, status, no_hash_join):
    """Keys stored once each, in no sorted order: matched by sorting both sides."""
    keys = [f"s:k{i}" for i in (5, 1, 9, 3, 7, 0, 8, 2, 6, 4, 11, 10)]
    texts = [f"t {k}" for k in keys]
    write(tmp_path / "ck", dict(zip(keys, texts)), part_rows=5, status=status)
    frame_keys = sorted(keys, key=lambda k: int(k[3:]))
    frame_texts = [f"t {k}" for k in frame_keys]
    frame_texts[2] = "changed"
    expect(reuse(tmp_path / "ck", frame_keys, frame_texts), frame_keys, frame_texts,
           [i != 2 for i in range(12)])
    assert not no_hash_join


@pytest.mark.parametrize("compact", [False, True])
def test_reuse_same_length_other_keys_and_superseded_rows(tmp_path, compact):
    keys = [f"s:k{i}" for i in range(12)]
    texts = [f"t{i}" for i in range(12)]
    write(tmp_path / "ck", dict(zip(keys, texts)), compact=compact)
    # as many stored rows as frame rows, but other keys: nothing of theirs is reused by key
    other = [f"s:o{i}" for i in range(12)]
    new = [f"new {i}" for i in range(12)]
    expect(reuse(tmp_path / "ck", other, new), other, new, [False] * 12)
    # the same texts under other keys: an identical request answered for another key
    expect(reuse(tmp_path / "ck", other, texts), other, texts, [True] * 12, owners=keys)
    # a later run rewrites k0..k5 with other texts: 18 rows stored, the later ones win
    write(tmp_path / "ck", {k: f"v2 {k}" for k in keys[:6]}, compact=compact)
    latest = [f"v2 {k}" for k in keys[:6]] + texts[6:]
    expect(reuse(tmp_path / "ck", keys, latest), keys, latest, [True] * 12)
    # the old texts: reused by identical request while the superseded rows exist, not once compacted
    expect(reuse(tmp_path / "ck", keys, texts), keys, texts, [not compact] * 6 + [True] * 6)


def test_reuse_stored_failures_by_layout(tmp_path, no_hash_join):
    keys = [f"i:{i}" for i in range(15)]
    texts = [f"t{i}" for i in range(15)]
    write(tmp_path / "ck", dict(zip(keys, texts)), status="failed", compact=True)
    r = reuse(tmp_path / "ck", keys, texts)
    assert r.count == 15 and (r.stored["status"] == "failed").all()
    assert (r.stored["error_code"] == "x").all()
    assert reuse(tmp_path / "ck", keys, texts, retry=True).count == 0  # retry_failed=True
    assert reuse(tmp_path / "ck", keys, texts, retry=("x",)).count == 0  # that code
    assert reuse(tmp_path / "ck", keys, texts, retry=("other",)).count == 15


def test_complete_resumes_a_compacted_checkpoint_with_a_shuffled_frame(sim, tmp_path):
    df = frame(40)
    ckpt = tmp_path / "ck"
    first = batchframe.complete(df, "text", model="qwen-plus", base_url=sim.base_url, checkpoint=ckpt,
                                progress=False, max_workers=8)
    with CheckpointStore(ckpt) as store:
        store.compact()
    shuffled = df.sample(frac=1, random_state=3)
    sent = sim.stats()["requests"]
    again = batchframe.complete(shuffled, "text", model="qwen-plus", base_url=sim.base_url,
                                checkpoint=ckpt, progress=False)
    assert sim.stats()["requests"] == sent and again.attrs["batchframe"]["sent"] == 0
    assert again.attrs["batchframe"]["reused"] == 40
    pd.testing.assert_frame_equal(again.loc[df.index], first)


@pytest.mark.parametrize("compact", [False, True])
def test_both_ways_of_reading_decide_alike(tmp_path, compact):
    """One decision: an in-memory frame (the whole checkpoint read at once) and a stream (stored rows
    found by hash, read back with a filter) reuse exactly the same rows with the same columns."""
    rng = random.Random(5)
    keys = [f"i:{i}" for i in range(60)]
    write(tmp_path / "ck", {k: f"t{rng.randrange(20)}" for k in keys[:40]}, compact=compact)
    write(tmp_path / "ck", {k: f"t{rng.randrange(20)}" for k in keys[30:50]}, status="failed")
    write(tmp_path / "ck", {k: f"t{rng.randrange(20)}" for k in keys[45:55]}, compact=False)
    for trial in range(5):
        batch = rng.sample(keys, 25)
        texts = [f"t{rng.randrange(25)}" for _ in batch]
        for retry in (False, True, ("x",)):
            a = reuse(tmp_path / "ck", batch, texts, retry=retry, whole=True)
            b = reuse(tmp_path / "ck", batch, texts, retry=retry, whole=False)
            assert a.use.tolist() == b.use.tolist() and a.count == b.count
            if a.count:
                pd.testing.assert_frame_equal(a.stored, b.stored)
