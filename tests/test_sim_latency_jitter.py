"""The simulator's latency_jitter_s knob (a 9-11 s wait for the ceiling benchmark): a "fixed" wait
spread uniformly on latency_s +- jitter, reproducibly; validated."""

from __future__ import annotations

import pytest

from batchframe.simulator import SimConfig
from batchframe.simulator._draw import Draw


def test_a_fixed_wait_with_jitter_spreads_over_the_band():
    config = SimConfig(latency_s=10.0, latency_jitter_s=1.0)
    waits = [Draw(7, i.to_bytes(4, "big"), 0).latency(config) for i in range(2000)]
    assert all(9.0 <= w <= 11.0 for w in waits)
    assert min(waits) < 9.1 and max(waits) > 10.9  # the whole band, not one value
    assert waits == [Draw(7, i.to_bytes(4, "big"), 0).latency(config) for i in range(2000)]


def test_no_jitter_is_the_fixed_wait():
    assert {Draw(0, bytes([i]), 0).latency(SimConfig(latency_s=2.0)) for i in range(50)} == {2.0}


@pytest.mark.parametrize("bad", [dict(latency_s=1.0, latency_jitter_s=2.0), dict(latency_jitter_s=-1.0),
                                 dict(latency_s=1.0, latency_jitter_s=float("nan"))])
def test_bad_jitter_is_refused(bad):
    with pytest.raises(ValueError):
        SimConfig(**bad)
