"""``batchframe status CHECKPOINT``: rows done / failed / pending, tokens and cost (text, or ``--json``),
and a Batch File job's batches as last seen (rows in live batches count as submitted); ``batchframe
cancel CHECKPOINT`` cancels them.

Reads without the lock (works while a run writes). "pending" is known when the checkpoint records its
input's row count (every run records it, from Python or the CLI): input rows without a stored answer (rows with no prompt are
never sent, so they count here too).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..checkpoint.store import checkpoint_summary
from ..checkpoint.meta import read_meta


def status(path: str) -> dict:
    out = checkpoint_summary(path)
    stored = read_meta(path) or {}
    meta = stored.get("meta") if isinstance(stored.get("meta"), dict) else {}
    inp = meta.get("input") if isinstance(meta.get("input"), dict) else {}
    rows = inp.get("rows")
    out["pending"] = max(rows - out["rows"], 0) if isinstance(rows, int) else None
    out["input"] = {k: inp.get(k) for k in ("kind", "path", "format", "rows")} if inp else None
    out["model"], out["base_url"] = meta.get("model"), meta.get("base_url")
    out["outputs"] = meta.get("outputs") or []
    out["library_version"] = stored.get("library_version")
    out["created_at"], out["updated_at"] = stored.get("created_at"), stored.get("updated_at")
    out["batches"], out["submitted"] = _batches(path)
    return out


def _batches(path: str) -> tuple[list[dict], int]:
    """The Batch File job's batches as last seen (no network), and the rows in live ones."""
    from ..batchfile.record import JobLog

    if not JobLog.exists(path):
        return [], 0
    chunks = sorted(JobLog(path).chunks.values(), key=lambda c: c.n)
    rows = [{"batch_id": c.batch_id, "status": c.status or ("not created" if c.live else None),
             "total": c.total, "completed": c.completed, "failed": c.failed, "lines": c.lines, "rows": c.rows,
             "attempt": c.attempt, "merged": not c.live,
             "expires_at": _iso(c.expires_at) if c.expires_at else None} for c in chunks]
    return rows, sum(c.rows for c in chunks if c.live)


def _iso(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="minutes")


def render(path: str, s: dict) -> str:
    submitted = f", {s['submitted']} of them submitted in live batches" if s.get("submitted") else ""
    lines = [f"checkpoint {path}: {s['rows']} rows stored, {s['ok']} ok, {s['failed']} failed"
             + (f"; {s['pending']} input rows pending (not answered yet, or with no prompt to send{submitted})"
               if s["pending"] is not None else (f"; {s['submitted']} rows submitted in live batches"
                                                 if s.get("submitted") else ""))]
    if s["input"] and s["input"].get("path"):
        lines.append(f"  input: {s['input']['path']} ({s['input']['rows']} rows, {s['input']['format']})")
    elif s["input"]:
        lines.append(f"  input: a {s['input'].get('kind') or 'data'} frame of {s['input']['rows']} rows")
    if s["model"]:
        lines.append(f"  model: {s['model']} at {s['base_url']}")
    if s["by_error_code"]:
        codes = sorted(s["by_error_code"].items(), key=lambda kv: -kv[1])
        lines.append("  failed by code: " + ", ".join(f"{k}={v}" for k, v in codes))
    tok = f"  tokens: {s['prompt_tokens']:,} in, {s['completion_tokens']:,} out"
    if s.get("reasoning_tokens"):
        tok += f" (of which {s['reasoning_tokens']:,} thinking)"
    lines.append(tok + (f"; cost {s['cost']:.4f} CNY" if s["cost"] is not None else "; cost unknown"))
    if s.get("batches"):
        live = [b for b in s["batches"] if not b["merged"]]
        by: dict = {}
        for b in live:
            by[b["status"]] = by.get(b["status"], 0) + 1
        lines.append(f"  batches: {len(s['batches'])}, {len(live)} not merged yet"
                     + (" (" + ", ".join(f"{n} {k}" for k, n in by.items()) + ", as last seen)" if live else ""))
        for b in live[:10]:
            lines.append(f"    {b['batch_id'] or '(not created yet)'}: {b['status']}, {b['completed'] + b['failed']}"
                         f"/{b['lines']} lines done, {b['rows']} rows"
                         + (f", expires {b['expires_at']}" if b["expires_at"] else ""))
        if len(live) > 10:
            lines.append(f"    ... and {len(live) - 10} more (--json lists them all)")
    if s["outputs"]:
        lines.append(f"  output: {s['outputs'][-1]}")
    if s["updated_at"]:
        lines.append(f"  written by batchframe {s['library_version']}, last opened {s['updated_at']}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    path = os.fspath(args.checkpoint)
    s = status(path)
    print(json.dumps(s, indent=2, default=str) if args.json else render(path, s))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from ..batchfile.cancel import cancel_checkpoint

    path = os.fspath(args.checkpoint)
    got = cancel_checkpoint(path, poll_s=args.poll)
    print(f"batchframe: cancelled the {got['batches']} live batches of {path}: {got['rows_answered']} rows "
          f"answered by the lines that finished are stored"
          + (f"; {got['left']} batches still cancelling (run `batchframe cancel {path}` again to collect them)"
             if got["left"] else "") + "; rerun the run to write its output (the other rows pending, or "
          "submitted again)", file=sys.stderr)
    return 0
