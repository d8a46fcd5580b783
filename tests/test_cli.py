"""The command line: ``batchframe run / estimate / status`` against the simulator, over real sockets.

Most tests call ``batchframe.cli.main([...])`` in-process; the interrupt tests and one smoke test run
the real console script in a subprocess. Small ``--batch-rows`` / ``--window-rows`` make every run
cross many batch boundaries and fill its read-ahead window, so ordering, windowing and dedupe across
batches are exercised on a few hundred rows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import batchframe
from batchframe.io import sources as _io
from batchframe.cli import main
from batchframe.simulator import Simulator

from conftest import wait_until

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
SMALL = ["--batch-rows", "37", "--window-rows", "80"]


def rows(n: int) -> pd.DataFrame:
    """Unique ids, a float column, far-apart duplicate prompts (row i and i + 4n/5), one empty prompt."""
    df = pd.DataFrame({"id": np.arange(n) * 3 + 1, "text": [f"review {i % (n * 4 // 5)}: it works fine"
                                                             for i in range(n)],
                       "score": (np.arange(n) % 7) + 0.5})
    df.loc[3, "text"] = None
    return df


def write(df: pd.DataFrame, path: Path) -> Path:
    fmt = path.suffix[1:]
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "tsv":
        df.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path, index=False)
    return path


def read_input(path) -> pd.DataFrame:
    """The whole input as one frame, read exactly as a run reads it (its batches, as pandas)."""
    source = _io.open_source(path)
    tables = list(source.batches(1 << 20))
    return _io.to_frame(pa.concat_tables(tables) if tables else source.schema.empty_table())


def run(inp, out, sim, *extra, prompt=("--prompt-col", "text")) -> int:
    return main(["run", str(inp), "-o", str(out), *prompt, "--model", "qwen-plus",
                 "--base-url", sim.base_url, "--workers", "16", "--no-progress", *map(str, extra)])


def expected(inp, sim, **kw) -> pd.DataFrame:
    kw.setdefault("prompt_col", "text")
    return batchframe.complete(read_input(inp), model="qwen-plus", base_url=sim.base_url,
                               progress=False, max_workers=16, **kw)


def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal columns, dtypes and values (latency is measured, so it differs run to run)."""
    pd.testing.assert_frame_equal(got.drop(columns="latency_s").reset_index(drop=True),
                                  want.drop(columns="latency_s").reset_index(drop=True))


# ---- results: the streaming output is complete()'s output ---------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_format_streams_to_what_complete_returns(tmp_path, fmt):
    inp = write(rows(300), tmp_path / f"in.{fmt}")
    # answers come back out of order (random latency); 37-row batches, at most 80 rows read ahead
    with Simulator(latency="uniform", latency_s=0.005) as sim:
        assert run(inp, tmp_path / "out.parquet", sim, *SMALL) == 3  # row 3 has no prompt: failed
        sent = sim.stats()["requests"]
    with Simulator() as sim:
        want = expected(inp, sim)
    same(pd.read_parquet(tmp_path / "out.parquet"), want)
    assert sent == 240  # duplicates 240 rows apart (beyond the window) are still sent once


def test_csv_output_and_sample_files(tmp_path):
    for name in ("reviews.csv", "reviews.parquet"):
        with Simulator() as sim:
            assert run(SAMPLES / name, tmp_path / f"{name}.csv", sim, prompt=("--prompt-col", "review")) == 0
            assert sim.stats()["requests"] == 237  # 240 reviews, 3 repeated
        with Simulator() as sim:
            want = expected(SAMPLES / name, sim, prompt_col="review")
        want.to_csv(tmp_path / "want.csv", index=False)
        same(pd.read_csv(tmp_path / f"{name}.csv"), pd.read_csv(tmp_path / "want.csv"))


def test_directory_of_parquet_files_in_order(tmp_path):
    df = rows(200)
    (tmp_path / "in").mkdir()
    for i, part in enumerate([df.iloc[:70], df.iloc[70:71], df.iloc[71:]]):
        part.to_parquet(tmp_path / "in" / f"part-{i}.parquet", index=False)
    with Simulator() as sim:
        assert run(tmp_path / "in", tmp_path / "out.parquet", sim, *SMALL) == 3
    with Simulator() as sim:
        want = expected(tmp_path / "in", sim)
    same(pd.read_parquet(tmp_path / "out.parquet"), want)
    assert want["id"].tolist() == df["id"].tolist()


def test_rerun_resumes_and_sends_nothing(tmp_path, sim):
    inp = write(rows(200), tmp_path / "in.csv")
    assert run(inp, tmp_path / "out.jsonl", sim, *SMALL) == 3
    first = pd.read_json(tmp_path / "out.jsonl", lines=True)
    sent = sim.stats()["requests"]
    assert run(inp, tmp_path / "out.jsonl", sim, *SMALL) == 3
    assert sim.stats()["requests"] == sent
    pd.testing.assert_frame_equal(pd.read_json(tmp_path / "out.jsonl", lines=True), first)


def test_parse_with_a_schema_and_in_json_mode(tmp_path):
    inp = write(rows(120), tmp_path / "in.parquet")
    schema = {"type": "object", "properties": {"sentiment": {"type": "string"}, "confidence": {"type": "number"}},
              "required": ["sentiment"]}
    (tmp_path / "answer.json").write_text(json.dumps(schema))
    rf = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    for name, args, kw in [("schema", ["--schema", tmp_path / "answer.json"], {"response_format": rf}),
                           ("json", ["--param", 'response_format={"type": "json_object"}'],
                            {"response_format": {"type": "json_object"}})]:
        with Simulator() as sim:
            assert run(inp, tmp_path / f"{name}.parquet", sim, *SMALL, *args, "--parse",
                       prompt=("--template", "Answer in JSON: {text}")) == 3
        with Simulator() as sim:
            want = expected(inp, sim, prompt_col=None, template="Answer in JSON: {text}", parse=True, **kw)
        got = pd.read_parquet(tmp_path / f"{name}.parquet")
        assert {"sentiment", "confidence", "parse_error"} <= set(got.columns)
        same(got, want)


def test_messages_column_and_id_col(tmp_path, sim):
    df = pd.DataFrame({"key": [f"k{i}" for i in range(30)],
                       "messages": [[{"role": "user", "content": f"hello {i}"}] for i in range(30)]})
    inp = write(df, tmp_path / "in.jsonl")
    assert run(inp, tmp_path / "out.parquet", sim, "--id-col", "key",
               prompt=("--messages-col", "messages")) == 0
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert (got["status"] == "ok").all() and got["key"].tolist() == df["key"].tolist()
    stored = batchframe.load_checkpoint(tmp_path / "out.parquet.checkpoint")
    assert sorted(stored["key"]) == sorted(f"s:k{i}" for i in range(30))


def test_empty_input_gets_the_header(tmp_path, sim):
    inp = tmp_path / "in.csv"
    inp.write_text("id,text\n")
    assert run(inp, tmp_path / "out.csv", sim) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 0 and {"id", "text", "response", "status", "cost"} <= set(out.columns)


# ---- exit codes -----------------------------------------------------------------------------------

def test_failed_rows_exit_3_and_status_reports_them(tmp_path, sim, capsys):
    df = rows(50)
    df.loc[7, "text"] = "something bad [[moderate]]"
    inp = write(df, tmp_path / "in.parquet")
    assert run(inp, tmp_path / "out.parquet", sim) == 3
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out.loc[7, "error_code"] == "data_inspection_failed" and out.loc[3, "error_code"] == "empty_prompt"
    capsys.readouterr()
    assert main(["status", str(tmp_path / "out.parquet.checkpoint")]) == 0
    text = capsys.readouterr().out
    assert "48 ok, 1 failed; 1 input rows pending" in text and "data_inspection_failed=1" in text
    assert main(["status", "--json", str(tmp_path / "out.parquet.checkpoint")]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["ok"], s["failed"], s["pending"], s["input"]["rows"]) == (48, 1, 1, 50)  # the empty row: never sent
    sent = sim.stats()["requests"]
    assert run(inp, tmp_path / "out.parquet", sim) == 3 and sim.stats()["requests"] == sent
    assert run(inp, tmp_path / "out.parquet", sim, "--retry-code", "data_inspection_failed") == 3
    assert sim.stats()["requests"] == sent + 1  # only the moderated row is sent again


def test_wrong_key_is_fatal_exit_1_one_line_no_output(tmp_path, monkeypatch, capsys):
    inp = write(rows(2000), tmp_path / "in.parquet")
    monkeypatch.setenv("BATCHFRAME_API_KEY", "sk-wrong-key-1234567890abcdef")
    with Simulator(api_key="right-key") as sim:
        assert run(inp, tmp_path / "out.csv", sim) == 1
        assert sim.stats()["requests"] <= 2 * 16
    err = capsys.readouterr().err.strip().splitlines()
    assert sum("run stopped" in line for line in err) == 1  # said once, as the last line
    assert "401" in err[-1] and err[-1].startswith("batchframe: error:")
    assert not any("sk-wrong" in line for line in err)
    assert not (tmp_path / "out.csv").exists()


def test_budget_stop_exit_4_writes_pending_rows_then_rerun_finishes(tmp_path, sim):
    inp = write(rows(300), tmp_path / "in.parquet")
    assert run(inp, tmp_path / "out.parquet", sim, *SMALL, "--max-cost", "0.001") == 2  # no price known
    assert run(inp, tmp_path / "out.parquet", sim, *SMALL, "--max-cost", "0.001", "--prices", "1", "2") == 2  # no bound
    assert run(inp, tmp_path / "out.parquet", sim, *SMALL, "--max-cost", "0.001", "--prices", "1", "2",
               "--max-tokens", "20") == 4
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == 300 and (out["status"] == "pending").sum() > 200
    assert run(inp, tmp_path / "out.parquet", sim, *SMALL, "--prices", "1", "2") == 3  # row 3: no prompt
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert (out["status"] == "ok").sum() == 299 and sim.stats()["duplicate_successes"] == 0


@pytest.mark.parametrize("argv", [
    ["run"],
    ["run", "x.csv", "-o", "y.csv", "--model", "m"],                           # nothing to send
    ["run", "x.csv", "-o", "y.csv", "--prompt-col", "t", "--model", "m", "--workers", "0"],
    ["run", "x.csv", "-o", "y.csv", "--prompt-col", "t", "--model", "m", "--bogus"],
    ["run", "x.csv", "-o", "y.csv", "--prompt-col", "t", "--model", "m", "--param", "tempreature=1"],
    ["nope"],
])
def test_bad_arguments_exit_2(tmp_path, argv, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write(rows(5), tmp_path / "x.csv")
    assert main(argv) == 2
    assert capsys.readouterr().err.strip()


def test_help_reads_well(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "run" in top and "estimate" in top and "status" in top and "exit codes" in top
    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--prompt-col", "--template", "--system", "--image-col", "--param", "--parse", "--prices",
                 "--checkpoint", "--retry-failed", "--deadline", "--max-cost", "--fsync", "--no-dedupe",
                 "--prefix", "--qps", "--max-pending", "--batch-rows", "DASHSCOPE_API_KEY"):
        assert flag in text, flag
    assert "--api-key" not in text.replace("there is no --api-key", "")


def test_every_help_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    """Each example of `batchframe run --help` and `batchframe --help`, run as printed from a directory
    holding the shipped samples (the ones for a real key get --simulate: no key, no network), exits 0
    without a warning about its own request."""
    import shlex

    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    joined = text.split("examples:")[-1].replace("\\\n", " ")
    commands = [shlex.split(line.strip()) for line in joined.splitlines() if line.strip().startswith("batchframe ")]
    assert len(commands) >= 4 and any("--schema" in c for c in commands)
    shutil.copytree(Path(__file__).parent.parent / "data" / "samples", tmp_path / "data" / "samples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    for argv in commands:
        if argv[1] == "run":
            argv += [] if "--simulate" in argv else ["--simulate"]
            argv += ["--no-progress"]
        assert main(argv[1:]) == 0, argv
        err = capsys.readouterr().err
        assert "refuse" not in err and "warning" not in err.lower(), (argv, err)
    labels = pd.read_parquet(tmp_path / "out" / "labels.parquet")
    assert {"sentiment", "confidence", "topics"} <= set(labels.columns) and (labels["status"] == "ok").all()


# ---- bad input: a clear line, exit 2, nothing written or overwritten ------------------------------

def test_bad_input(tmp_path, sim, capsys):
    good = write(rows(20), tmp_path / "in.csv")
    (tmp_path / "in.xlsx").write_text("x")
    (tmp_path / "bad.parquet").write_bytes(b"not a parquet file at all")
    cases = [
        ("no such file", tmp_path / "missing.csv", tmp_path / "o1.csv", ["--prompt-col", "text"]),
        ("unknown format", tmp_path / "in.xlsx", tmp_path / "o2.csv", ["--prompt-col", "text"]),
        ("cannot read", tmp_path / "bad.parquet", tmp_path / "o3.csv", ["--prompt-col", "text"]),
        ("is the input", good, good, ["--prompt-col", "text"]),
        ("is not a column", good, tmp_path / "o4.csv", ["--prompt-col", "nope"]),
        ("missing column", good, tmp_path / "o5.csv", ["--template", "{nope}"]),
        ("not text", good, tmp_path / "o6.csv", ["--prompt-col", "score"]),
        ("unknown format", good, tmp_path / "out.xlsx", ["--prompt-col", "text"]),
    ]
    for reason, inp, out, prompt in cases:
        capsys.readouterr()
        assert run(inp, out, sim, prompt=prompt) == 2, reason
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and reason in err[-1], (reason, err)
    assert sim.stats()["requests"] == 0
    assert good.read_text().startswith("id,text")


def test_checkpoint_of_another_input_is_refused(tmp_path, sim, capsys):
    a = write(rows(20), tmp_path / "a.csv")
    b = write(rows(25), tmp_path / "b.csv")
    assert run(a, tmp_path / "a_out.csv", sim, "--checkpoint", tmp_path / "ck") == 3
    capsys.readouterr()
    assert run(b, tmp_path / "b_out.csv", sim, "--checkpoint", tmp_path / "ck") == 2
    err = capsys.readouterr().err
    assert "another input" in err and "--force-checkpoint" in err and not (tmp_path / "b_out.csv").exists()
    sent = sim.stats()["requests"]
    assert run(b, tmp_path / "b_out.csv", sim, "--checkpoint", tmp_path / "ck", "--force-checkpoint") == 3
    assert sim.stats()["requests"] - sent == 4  # only "review 16".."review 19" are new requests


def test_output_that_is_not_ours_is_never_overwritten(tmp_path, sim, capsys):
    inp = write(rows(20), tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    assert run(inp, out, sim) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "precious\n"
    assert run(inp, out, sim, "--overwrite") == 3
    assert run(inp, out, sim) == 3  # now it is ours: a rerun replaces it
    (tmp_path / "dir").mkdir()
    write(rows(5), tmp_path / "dir" / "a.csv")
    assert run(tmp_path / "dir", tmp_path / "dir" / "o.csv", sim) == 2
    assert "inside the input directory" in capsys.readouterr().err


def test_duplicate_ids_are_refused_before_sending(tmp_path, sim, capsys):
    df = rows(20)
    df.loc[15, "id"] = df.loc[4, "id"]
    inp = write(df, tmp_path / "in.parquet")
    assert run(inp, tmp_path / "out.csv", sim, "--id-col", "id") == 2
    assert "duplicate" in capsys.readouterr().err and sim.stats()["requests"] == 0


# ---- estimate ---------------------------------------------------------------------------------------

def test_estimate_counts_what_a_run_would_send(tmp_path, sim, capsys):
    inp = write(rows(100), tmp_path / "in.parquet")
    base = ["estimate", str(inp), "--prompt-col", "text", "--model", "qwen-plus", "--json", "--batch-rows", "30"]
    assert main(base) == 0
    e = json.loads(capsys.readouterr().out)
    assert (e["rows"], e["unique_requests"], e["empty_rows"], e["requests_to_send"]) == (100, 80, 1, 80)
    want = batchframe.estimate(read_input(inp), "text", model="qwen-plus")
    assert e["input_tokens"] == want.input_tokens and e["cost"] == pytest.approx(want.cost)
    assert run(inp, tmp_path / "out.csv", sim, "--batch-rows", "30") == 3
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "out.csv"), "--base-url", sim.base_url]) == 0
    e = json.loads(capsys.readouterr().out)
    assert (e["done_rows"], e["requests_to_send"]) == (99, 0)


# ---- the console script, Ctrl-C and kill -9 ---------------------------------------------------------

def _script() -> list[str]:
    exe = Path(sys.executable).parent / "batchframe"
    return [str(exe)] if exe.exists() else [shutil.which("batchframe") or "batchframe"]


def test_console_script_smoke(tmp_path):
    r = subprocess.run([*_script(), "run", str(SAMPLES / "reviews.parquet"), "-o", str(tmp_path / "o.tsv"),
                        "--prompt-col", "review", "--model", "qwen-plus", "--simulate", "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(pd.read_csv(tmp_path / "o.tsv", sep="\t")) == 240 and "FAKE" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_then_rerun_has_every_row_once_in_order(tmp_path, sig):
    df = rows(2500)
    inp = write(df, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    with Simulator(latency_s=0.02) as sim:
        argv = [*_script(), "run", str(inp), "-o", str(out), "--prompt-col", "text", "--model", "qwen-plus",
                "--base-url", sim.base_url, "--workers", "16", "--batch-rows", "100"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: sim.stats()["successes"] >= 400 or proc.poll() is not None, timeout=60)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == (4 if sig == signal.SIGINT else -signal.SIGKILL), err
        if sig == signal.SIGINT:
            assert "Rerun the same command" in err
        assert not out.exists()  # the output is only ever written complete
        before = sim.stats()["successes"]
        assert before < 2001
        assert run(inp, out, sim, "--batch-rows", "100") == 3  # row 3 has no prompt: failed
        stats = sim.stats()
    got = pd.read_parquet(out)
    assert got["id"].tolist() == df["id"].tolist() and (got["status"] == "ok").sum() == 2499
    assert stats["distinct_successes"] == 2000
    # only calls in flight at the instant of the kill can be paid twice; Ctrl-C collects them first
    assert stats["duplicate_successes"] <= (0 if sig == signal.SIGINT else 16)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_seen_hashes_across_runs():
    from batchframe.checkpoint.hashes import SeenHashes

    seen = SeenHashes(flush_at=8)
    values = np.arange(1000, dtype=np.uint64) * 7919
    firsts = []
    for chunk in np.array_split(np.concatenate([values, values[::3]]), 40):
        firsts += seen.first_seen(chunk)
    assert sum(firsts) == 1000 and len(seen) == 1000 and all(firsts[:1000])
    assert seen.contains(np.array([7919 * 5, 3], dtype=np.uint64)) == [True, False]


def test_seen_hashes_large_runs_merge_and_drop_values_added_twice(monkeypatch):
    from batchframe.checkpoint import hashes as R

    monkeypatch.setattr(R, "_OWN_MAPPING", 16)  # runs of 16+ values in mappings of their own
    monkeypatch.setattr(R, "_BLOCK", 5)         # the duplicate scan crosses block edges
    a, b = np.arange(0, 40, 2, dtype=np.uint64), np.arange(1, 41, 3, dtype=np.uint64)
    merged = R._merge(a, b)
    assert merged.tolist() == sorted(set(a.tolist()) | set(b.tolist())) and merged.flags.writeable
    assert R._merge(a, a + np.uint64(1)).tolist() == list(range(40))  # no duplicates: one pass
    seen = R.SeenHashes(flush_at=8)
    values = np.arange(1, 601, dtype=np.uint64) * 104729
    for chunk in np.array_split(values, 60):
        seen.add(chunk)
    seen.add(values[[7, 299, 598]])  # answered twice
    for run in seen._runs:
        assert (np.diff(run.astype(np.int64)) > 0).all()
    assert sorted(set(np.concatenate(seen._runs).tolist()) | seen._recent) == values.tolist()
    assert seen.contains(values) == [True] * 600
    assert seen.contains(values + np.uint64(1)) == [False] * 600


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmRSS / VmHWM from /proc")
def test_seen_hashes_memory_is_its_eight_bytes_a_value():
    """A million answers cost the runs' 8 MiB, not the heap growth of freeing multi-MiB arrays
    through malloc."""
    code = """if True:
        import numpy as np
        from batchframe.checkpoint.hashes import SeenHashes, hashes

        def mib(field):
            for line in open("/proc/self/status"):
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
        seen, rng = SeenHashes(), np.random.default_rng(0)
        seen.add(hashes([str(i) for i in range(1000)]))
        open("/proc/self/clear_refs", "w").write("5")  # VmHWM from here
        before = mib("VmRSS")
        for _ in range(100):
            values = rng.integers(0, 2**63, 10_000, dtype=np.uint64)
            seen.contains(values)
            seen.add(values)
        print(mib("VmRSS") - before, mib("VmHWM") - before, len(seen))
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    grown, peak, n = out.split()
    assert int(n) == 1_001_000
    assert float(grown) < 18 and float(peak) < 30, out  # measured 13.5 and 18 (before: 22 and 63)
