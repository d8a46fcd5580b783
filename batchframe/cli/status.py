"""``batchframe status CHECKPOINT``: rows done / failed / pending, tokens and cost (text, or ``--json``).

Reads without the lock (works while a run writes). "pending" is known when the checkpoint records its
input's row count (every run records it, from Python or the CLI): input rows without a stored answer (rows with no prompt are
never sent, so they count here too).
"""

from __future__ import annotations

import argparse
import json
import os

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
    return out


def render(path: str, s: dict) -> str:
    lines = [f"checkpoint {path}: {s['rows']} rows stored, {s['ok']} ok, {s['failed']} failed"
             + (f"; {s['pending']} input rows pending (not answered yet, or with no prompt to send)"
               if s["pending"] is not None else "")]
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
