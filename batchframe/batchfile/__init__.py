"""Batch File mode: the run's second executor (upload, batch, poll, collect) behind the same call.

    out = df.batchchat.complete(prompt_col="review", model="qwen-plus", mode="file", checkpoint="runs/r")
    job = df.batchchat.submit(prompt_col="review", model="qwen-plus", checkpoint="runs/r")

A file-mode run is three phases over the same source, through ``pipeline.run.Run`` (``job.FileJob``):

    A. submit   (``submit``)   rows → request hashes → checkpoint reuse → one line per distinct
                               request, into chunk files on disk (``chunks``), each uploaded and
                               made a batch as it closes, every id recorded the moment it exists
                               (``record``: the job log in ``<checkpoint>/_batchfile/``)
    B. wait     (``wait``)     poll, and as each batch finishes, merge it (``merge``): lines
                               streamed, judged one by one (``lines``), answers written to the
                               checkpoint under their rows' keys, retryable lines resubmitted
    C. collect                 the run's ordinary loop with nothing to send: the frame or file,
                               exactly as Batch Chat makes it

Invariants: the checkpoint is the truth (the same call re-attaches from any process, a crash between
create and record is healed through the batch list, ``control``); a request is in at most one live
batch, and a row's answer is written before it counts; memory is flat in the row count (files are
built and merged streaming; 12 bytes per submitted request stay in memory while submitting).
"""

from typing import Any

__all__ = ["Job"]


def __getattr__(name: str) -> Any:  # the options resolver imports this package: keep it light
    if name == "Job":
        from .handle import Job

        return Job
    raise AttributeError(f"module 'batchframe.batchfile' has no attribute {name!r}")
