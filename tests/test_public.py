"""The public surface and the promise that importing does nothing but register the accessor."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

import batchframe


EXPECTED = {
    "complete", "estimate", "load_checkpoint", "submit", "Simulator", "SimConfig", "__version__",
    "BatchframeError", "BudgetExceeded", "CheckpointError", "CheckpointLocked", "ConfigError",
    "RunFatalError", "RunInterrupted",
}


def test_all_matches_public_names():
    assert set(batchframe.__all__) == EXPECTED
    for name in batchframe.__all__:
        assert getattr(batchframe, name) is not None


def test_accessor_is_registered_and_stateless():
    df = pd.DataFrame({"a": ["x"]})
    assert hasattr(df, "batchchat")
    assert df.batchchat is not df.batchchat
    assert not [k for k in vars(df.batchchat) if k != "_df"]


def test_import_is_cheap_and_side_effect_free(tmp_path):
    code = (
        "import logging, sys, os; before = set(os.listdir('.')); import batchframe; "
        "assert set(os.listdir('.')) == before, 'files written'; "
        "assert not logging.getLogger('batchframe').handlers; assert not logging.getLogger().handlers; "
        "heavy = [m for m in ('openai', 'httpx2', 'aiohttp', 'dask', 'tqdm') if m in sys.modules]; "
        "assert not heavy, heavy; print('clean')"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "clean" in out.stdout
