"""``batchframe estimate``: ``batchframe.estimate`` over an input of any size, batch by batch.

Each batch goes through ``estimate()`` (same counting, prices and notes as the Python call) holding
only the rows a run would send for the first time: rows the checkpoint answered are left out (the
same per-batch lookup as the run), and a request already counted in an earlier batch is not counted
again (8 bytes per distinct request remembered, not the rows). The batch results are summed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np

from .plan import check_input, checkpoint_path, endpoint, plan, run_options, stored_meta
from ..pipeline.estimate import Estimate, estimate
from ..pipeline.batch import prepare, request_frame
from ..checkpoint.lookup import SeenHashes, StoredLookup, hashes


def cmd_estimate(args: argparse.Namespace) -> int:
    p = plan(args)
    ckpt = checkpoint_path(args)
    meta = stored_meta(ckpt)
    lookup = None
    if ckpt is not None and meta:
        check_input(ckpt, meta, p.source, args.force_checkpoint)
        lookup = StoredLookup(ckpt, p.options["retry_failed"])
    with endpoint(args, offline=True) as (url, ep, model):
        opts = run_options(args, p, url=url, ep=ep, model=model, offline=True)
    rows = dataclasses.replace(p.rows, hasher=opts.spec.hasher(), dedupe=opts.dedupe)
    kwargs = {**p.options, **p.params}
    kwargs.pop("retry_failed", None)
    unique, to_send = SeenHashes(), SeenHashes()
    parts: list[Estimate] = []
    done_rows = start = 0
    for table in p.source.batches(args.batch_rows):
        b, _, rids = prepare(table, start, rows)
        start += b.n
        done = set(lookup.lookup(b.keys, rids)[0]) if lookup else set()
        done_rows += len(done)
        with_rid = [pos for pos, r in enumerate(rids) if r is not None]
        unique.first_seen(hashes([rids[i] for i in with_rid]))
        send = [pos for pos in with_rid if pos not in done]
        first = to_send.first_seen(hashes([rids[i] for i in send]))
        keep = sorted([pos for pos, new in zip(send, first) if new] + list(b.row_errors))
        sub = request_frame(b.frame, rows).iloc[keep]
        parts.append(estimate(sub, args.prompt_col, model=model, output_tokens=args.output_tokens,
                              image_tokens=args.image_tokens, **kwargs))
    if not parts:
        parts.append(estimate(request_frame(_empty(p.source), rows), args.prompt_col, model=model,
                              output_tokens=args.output_tokens, image_tokens=args.image_tokens, **kwargs))
    total = _sum(parts, rows=p.source.rows, unique=len(unique), done=done_rows)
    print(json.dumps(total.as_dict(), indent=2, default=str) if args.json else repr(total), file=sys.stdout)
    return 0


def _empty(source):
    from ..io.sources import to_frame

    return to_frame(source.schema.empty_table())


def _sum(parts: list[Estimate], *, rows: int, unique: int, done: int) -> Estimate:
    first = parts[0]
    costs = [e.cost for e in parts if e.requests_to_send]
    per = first.output_tokens_per_request
    sent = sum(e.requests_to_send for e in parts)
    notes = list(dict.fromkeys(n for e in parts for n in e.notes))
    return dataclasses.replace(
        first, rows=rows, unique_requests=unique, empty_rows=sum(e.empty_rows for e in parts),
        done_rows=done, requests_to_send=sent, input_tokens=sum(e.input_tokens for e in parts),
        output_tokens=int(np.round(per * sent)),
        cost=(sum(costs) if all(c is not None for c in costs) else None) if first.currency else None,
        notes=tuple(notes))
