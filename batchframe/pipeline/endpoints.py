"""A server started for the run: the built-in simulator (``simulate=``) or a local model (``local=``).

Started by the run after every check passed (so a bad argument never starts anything), stopped when
the run ends however it ends. The request hash names these endpoints by what they are, not by their
port, so a rerun resumes whatever port the new server got.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Iterator

from .options import RunOptions

log = logging.getLogger("batchframe")


@contextlib.contextmanager
def serve(opts: RunOptions) -> Iterator[RunOptions]:
    """``opts`` with the base URL of the server started for this run (unchanged without one)."""
    if opts.simulate is not None:
        from ..simulator import Simulator

        with Simulator(opts.simulate) as sim:
            log.warning("batchframe: using the built-in Batch Chat simulator at %s: answers are FAKE "
                        "(no real model, no key, no network)", sim.base_url)
            yield _at(opts, sim.base_url)
    elif opts.local is not None:
        from .local import local_server

        with local_server(**opts.local) as (url, name):
            log.warning("batchframe: using a local model (%s) at %s", name, url)
            yield _at(opts, url)
    else:
        yield opts


def _at(opts: RunOptions, base_url: str) -> RunOptions:
    return dataclasses.replace(opts, spec=dataclasses.replace(opts.spec, base_url=base_url))
