"""batchframe: a pandas DataFrame into thousands of LLM calls, and back into columns.

    import batchframe  # registers df.batchchat
    out = df.batchchat.complete(prompt_col="review", model="qwen-plus", checkpoint="runs/reviews")

Importing registers the ``batchchat`` accessor and does nothing else (no network, no files, no
logging configuration). Log messages go to ``logging.getLogger("batchframe")``.
"""

from __future__ import annotations

from typing import Any

from . import accessor  # noqa: F401  (registers df.batchchat)
from .api import complete, estimate
from .exceptions import (
    BatchframeError,
    BudgetExceeded,
    CheckpointError,
    CheckpointLocked,
    ConfigError,
    RunFatalError,
    RunInterrupted,
)

__version__ = "0.1.0"

__all__ = [
    "BatchframeError",
    "BudgetExceeded",
    "CheckpointError",
    "CheckpointLocked",
    "ConfigError",
    "RunFatalError",
    "RunInterrupted",
    "Simulator",
    "SimConfig",
    "__version__",
    "complete",
    "estimate",
    "load_checkpoint",
]


def __getattr__(name: str) -> Any:  # heavy or optional pieces load on first use, not at import
    if name in ("Simulator", "SimConfig"):
        from . import simulator

        return getattr(simulator, name)
    if name == "load_checkpoint":
        from .checkpoint.store import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'batchframe' has no attribute {name!r}")
