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
    acc = df.batchchat  # pandas < 2.1 caches an accessor per frame: what matters is that it holds no state
    assert not [k for k in vars(acc) if k != "_df"] and acc._df is df
    a = acc.complete(prompt_col="a", model="qwen-plus", simulate=True, progress=False)
    assert not [k for k in vars(df.batchchat) if k != "_df"]  # a run leaves nothing on the accessor
    b = df.batchchat.complete(prompt_col="a", model="qwen-plus", simulate={"seed": 1}, progress=False)
    assert list(df.columns) == ["a"] and a is not b and a["status"].tolist() == ["ok"]


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
