"""The ``df.batchchat`` accessor: a stateless shell over :func:`batchframe.complete`."""

from __future__ import annotations

from typing import Any

import pandas as pd


@pd.api.extensions.register_dataframe_accessor("batchchat")
class BatchChatAccessor:
    """``df.batchchat.complete(prompt_col=..., model=...)``: see :func:`batchframe.complete`."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def complete(self, prompt_col: str | None = None, **kwargs: Any) -> pd.DataFrame:
        from .api import complete

        return complete(self._df, prompt_col, **kwargs)

    complete.__doc__ = "Send one chat completion per row; see batchframe.complete for every option."

    def estimate(self, prompt_col: str | None = None, **kwargs: Any) -> Any:
        """Count tokens and project the cost of the same complete() call; see batchframe.estimate."""
        from .api import estimate

        return estimate(self._df, prompt_col, **kwargs)
