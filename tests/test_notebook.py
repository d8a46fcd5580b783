"""notebooks/quickstart.ipynb runs top to bottom against the simulator, and is committed with the outputs of such a
run (what a reader on a code host sees): no warnings, no errors, a progress widget, a plot, no key anywhere."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
nbformat = pytest.importorskip("nbformat")


def test_committed_notebook_shows_a_clean_run_and_never_holds_a_key():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs for c in code[:-1]), "run it with nbclient and save the outputs"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "Warning" not in stderr and "IProgress" not in stderr and "answers are FAKE" in stderr
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)  # a widget bar
    assert any("image/png" in o.get("data", {}) for o in outputs)
    everything = NOTEBOOK.read_text()
    assert "os.environ[" not in everything and "sk-" not in everything  # the key comes from the shell only
    assert any('os.environ.get("DASHSCOPE_API_KEY")' in c.source for c in code)


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
    assert "rows where the first sample lost the vote:" in text   # the vote over n=3 samples
    assert "DASHSCOPE_API_KEY is not set: no real run" in text     # nothing real without the key
