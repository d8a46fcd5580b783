"""The CLI refuses what it cannot do right, in one line, before anything is sent; and what stops it
(a full disk, a signal outside the run loop) ends in one line that says what is safe.

- a malformed CSV (a quote never closed, a row with too few fields) is refused with its line;
- a file that is not UTF-8 is refused with its line and the advice to re-encode it;
- ``-o blocker/out.csv`` (or ``--checkpoint``) under a file is refused, exit 2, nothing sent;
- a full disk (an injected ENOSPC on the checkpoint's journal; /dev/full as the output) says which
  is full and that the checkpoint holds the answers, exit 1, and the rerun resumes;
- SIGTERM during start-up says it was interrupted, exit 4 (rerun to resume), as in the run loop.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import batchframe
from batchframe.cli import main

from conftest import wait_until


def run(inp, out, sim, *extra) -> int:
    return main(["run", str(inp), "-o", str(out), "--prompt-col", "text", "--model", "qwen-plus",
                 "--base-url", sim.base_url, "--no-progress", *map(str, extra)])


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---- malformed CSV ------------------------------------------------------------------------------

@pytest.mark.parametrize("data, line", [
    (b'text\n"open quote\nsecond row\nthird row\n', 2),               # the file
    (b'text\nfine\n"a ""quoted"" word\nmore\n', 3),                      # escaped quotes, never closed
    (b'n,text\n1,ok\n2,"open\n3,rest\n', 3),                             # in the last column
    (b'text\nfine\n"', 3),                                               # a lone quote at the very end
], ids=["issue", "escaped", "last-column", "lone"])
def test_unterminated_quote_is_refused_with_its_line(sim, tmp_path, capsys, data, line):
    inp = write(tmp_path / "in.csv", data)
    assert run(inp, tmp_path / "out.csv", sim) == 2
    err = capsys.readouterr().err.strip()
    assert f"line {line}: a quote opened here is never closed" in err and len(err.splitlines()) == 1
    assert sim.stats()["requests"] == 0 and not (tmp_path / "out.csv").exists()


def test_a_row_with_too_few_fields_is_refused_with_its_line(sim, tmp_path, capsys):
    inp = write(tmp_path / "in.csv", b'id,text\n1,ok\n"2,unclosed\n3,more\n')
    assert run(inp, tmp_path / "out.csv", sim) == 2
    err = capsys.readouterr().err
    assert "line 3: expected 2 fields, found 1" in err and "never closed" in err
    assert sim.stats()["requests"] == 0


@pytest.mark.parametrize("data, rows", [
    (b'text\n"multi\nline"\nnext\n', 2),                      # a quoted newline: fine
    (b'text\n5" screen\n"quoted ""x"""\n""\n', 3),            # quotes inside and escaped: fine
    (b'text\n"ends quoted"', 1),                              # no final newline: fine
    (b'a,text\n1,\n2,"x"\n3,"', None),                        # the last field an open quote: refused
], ids=["multiline", "inner-quotes", "no-newline", "open-at-end"])
def test_well_formed_quotes_still_read(sim, tmp_path, capsys, data, rows):
    inp = write(tmp_path / "in.csv", data)
    code = run(inp, tmp_path / "out.csv", sim)
    if rows is None:
        assert code == 2 and "line 4: a quote opened here is never closed" in capsys.readouterr().err
    else:
        assert code in (0, 3), capsys.readouterr().err
        assert len(pd.read_csv(tmp_path / "out.csv")) == rows


GOOD = "".join(f"row {i} ok\n" for i in range(3000)).encode()  # the bad byte comes after 1 MiB reads too
LATIN = "café au lait".encode("cp1252")


@pytest.mark.parametrize("name, data, line", [
    ("in.csv", b"text\n" + GOOD + LATIN + b"\nend\n", 3002),
    ("in.csv", b"te" + LATIN + b"xt\nok\n", 1),                     # in the header
    ("in.jsonl", b'{"text": "ok"}\n{"text": "' + LATIN + b'"}\n', 2),  # pyarrow's JSON reader: no check
], ids=["csv", "csv-header", "jsonl"])
def test_not_utf8_is_refused_with_its_line_and_the_way_out(sim, tmp_path, capsys, name, data, line):
    inp = write(tmp_path / name, data)
    assert run(inp, tmp_path / "out.csv", sim) == 2
    err = capsys.readouterr().err
    assert f"line {line} is not UTF-8 (byte e9" in err and "Re-encode it" in err and "iconv" in err
    assert "could not settle the column types" not in err and "Traceback" not in err
    assert sim.stats()["requests"] == 0


# ---- the output's place ---------------------------------------------------------------------------

def test_output_or_checkpoint_under_a_file_is_refused(sim, tmp_path, capsys):
    inp = write(tmp_path / "in.csv", b"text\nhello\nworld\n")
    blocker = write(tmp_path / "blocker", b"a file")
    assert run(inp, blocker / "out.csv", sim) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"batchframe: error: output {blocker / 'out.csv'}: {blocker} is a file, not a directory; " \
                  "choose another -o"
    assert run(inp, tmp_path / "out.csv", sim, "--checkpoint", blocker / "deep" / "ck") == 2
    assert f"checkpoint {blocker / 'deep' / 'ck'}: {blocker} is a file" in capsys.readouterr().err
    assert sim.stats()["requests"] == 0
    assert run(inp, tmp_path / "new" / "dir" / "out.csv", sim) == 0  # directories still get created


# ---- a full disk --------------------------------------------------------------------------------

def test_full_disk_under_the_checkpoint_says_so_and_the_rerun_resumes(sim, tmp_path, capsys, monkeypatch):
    pd.DataFrame({"text": [f"row {i}" for i in range(60)]}).to_csv(tmp_path / "in.csv", index=False)
    real, journal_writes = os.write, []

    def write_until_full(fd, data):
        try:
            journal = "_journal-" in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            journal = False
        if journal:
            journal_writes.append(len(data))
            if len(journal_writes) > 10:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write_until_full)
    out, ckpt = tmp_path / "out.csv", tmp_path / "out.csv.checkpoint"
    assert run(inp := tmp_path / "in.csv", out, sim, "--workers", "4") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"batchframe: error: the disk is full (no space left writing the checkpoint {ckpt}); "
                       f"the checkpoint {ckpt} holds every answer saved before that: free some space and "
                       "rerun the same command to resume (only calls in flight then are sent again)")
    assert "Traceback" not in "\n".join(err) and not out.exists()
    saved = len(batchframe.load_checkpoint(ckpt))
    assert saved >= 10
    monkeypatch.setattr(os, "write", real)  # space freed
    sent = sim.stats()["requests"]
    assert run(inp, out, sim, "--workers", "4") == 0
    assert sim.stats()["requests"] - sent <= 60 - saved  # the saved answers are not sent again
    assert len(pd.read_csv(out)) == 60


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_full_disk_under_the_output_says_so(sim, tmp_path, capsys, fmt):
    """The output's temp file is /dev/full (every write: ENOSPC): pyarrow's or Python's OSError."""
    inp = write(tmp_path / "in.csv", b"text\nhello\nworld\n")
    out = tmp_path / f"out.{fmt}"
    os.symlink("/dev/full", tmp_path / f".out.{fmt}.{os.getpid()}.tmp")  # this process's temp name
    assert run(inp, out, sim) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"batchframe: error: the disk is full (no space left writing the output "
                              f"{out}); the checkpoint {out}.checkpoint holds every answer saved before that")
    assert "Traceback" not in "\n".join(err) and not out.exists()
    assert len(batchframe.load_checkpoint(f"{out}.checkpoint")) == 2  # both answers, for the rerun
    sent = sim.stats()["requests"]
    assert run(inp, out, sim) == 0 and sim.stats()["requests"] == sent  # written from the checkpoint
    assert len(pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)) == 2


# ---- a signal during start-up -------------------------------------------------------------------

def test_sigterm_during_start_up_ends_in_one_line(tmp_path):
    """The input is a FIFO: the command blocks reading it, before any run loop; SIGTERM then."""
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    exe = Path(sys.executable).parent / "batchframe"
    argv = [str(exe) if exe.exists() else "batchframe", "run", str(fifo), "-o", str(tmp_path / "out.csv"),
            "--prompt-col", "text", "--model", "qwen-plus", "--base-url", "http://127.0.0.1:9/v1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fds: list[int] = []

    def reader_is_there() -> bool:
        try:
            fds.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO until the CLI opened it
            return True
        except OSError:
            return proc.poll() is not None

    try:
        wait_until(reader_is_there, timeout=60)
        assert fds, "the command did not open its input"
        proc.send_signal(signal.SIGTERM)
        try:
            os.write(fds[0], b"text\nhello\n")
        except BrokenPipeError:
            pass
        os.close(fds[0])
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 4, (proc.returncode, err)
    assert err.strip().splitlines()[-1] == ("batchframe: interrupted (SIGTERM) before the run could finish; "
                                            "rerun the same command to resume")
    assert "Traceback" not in err
