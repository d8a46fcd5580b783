"""notebooks/quickstart.ipynb runs top to bottom against the simulator, and is committed without outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
nbformat = pytest.importorskip("nbformat")


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], cell.source[:60]
        assert cell.execution_count is None, cell.source[:60]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_notebook_runs_top_to_bottom(monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager

    # the python3 kernel of this interpreter (the venv running the tests), not another one on the PATH
    spec = KernelSpecManager().get_kernel_spec(NATIVE_KERNEL_NAME)
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve() or spec.argv[0] == "python"
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name=NATIVE_KERNEL_NAME,
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError on the first cell that errors
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "answers are FAKE" in text                      # the simulator says so
    assert "stopped because: budget" in text               # the first run stopped part-way ...
    assert "pending: 0" in text                            # ... and the rerun finished it
    assert "parse errors: 0" in text
