"""``batchframe estimate``: ``batchframe.estimate`` over an input of any size: the same counting, prices
and notes as the Python call, over the file's batches (``pipeline.estimate.estimate_source``)."""

from __future__ import annotations

import argparse
import json
import sys

from ..io.sources import FileRows, open_source
from ..pipeline.estimate import estimate_source
from .plan import check_input, check_source, checkpoint_path, options, stored_meta


def cmd_estimate(args: argparse.Namespace) -> int:
    source = open_source(args.input, args.format)
    opts = options(args, offline=True)
    check_source(source, opts, args.batch_rows)
    ckpt = checkpoint_path(args)
    meta = stored_meta(ckpt)
    if ckpt is not None and meta:
        check_input(ckpt, meta, source, args.force_checkpoint)
    total = estimate_source(opts, FileRows(source, batch_rows=args.batch_rows, id_col=args.id_col),
                            output_tokens=args.output_tokens, image_tokens=args.image_tokens)
    print(json.dumps(total.as_dict(), indent=2, default=str) if args.json else repr(total), file=sys.stdout)
    return 0
