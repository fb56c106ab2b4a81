"""`cancel --from-file`: bounded reading, so a wrong file is a usage error, not a MemoryError."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from frontoffice_async.cli import idfile
from frontoffice_async.testing import FrontOfficeSimulator

from ..support import Run

pytestmark = pytest.mark.usefixtures("fast_retries")


def _binary_stdin(data: bytes) -> io.TextIOWrapper:
    """stdin as a process has it: a text layer over bytes (the CLI reads the bytes)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
async def test_dev_zero_is_refused_at_its_first_line(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    code, out, err = await invoke("cancel", "--from-file", "/dev/zero")
    assert code == 2
    assert out == ""
    assert err == (
        "error: cannot read ids from /dev/zero: line 1 is longer than 1024 bytes "
        "(an order id is at most 128 characters): is it a file of order ids?\n"
    )
    assert sim.stats.requests == 0


@pytest.mark.parametrize("source", ["file", "stdin", "stdin-text"])
async def test_a_line_too_long_is_refused_with_its_number(
    sim: FrontOfficeSimulator,
    invoke: Run,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    source: str,
) -> None:
    [order_id] = sim.add_orders(1)
    data = f"{order_id}\n# fine\n{'A' * 1025}\n"
    path = tmp_path / "ids.txt"
    path.write_text(data)
    if source == "stdin":
        monkeypatch.setattr(sys, "stdin", _binary_stdin(data.encode()))
    elif source == "stdin-text":  # a stdin without a binary layer (embedded, tests)
        monkeypatch.setattr(sys, "stdin", io.StringIO(data))
    argv = ["cancel", "--json", "--from-file", "-" if source != "file" else str(path)]
    code, out, err = await invoke(*argv)
    assert code == 2
    assert json.loads(out)["error"]["type"] == "UsageError"
    assert "line 3 is longer than 1024 bytes" in err
    assert err.count("\n") == 1
    assert sim.stats.requests == 0  # nothing sent: the ids are all read first


async def test_the_longest_line_allowed_is_read(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path
) -> None:
    [order_id] = sim.add_orders(1)
    path = tmp_path / "ids.txt"
    comment = "  # " + "c" * (1024 - len(order_id) - 4)
    path.write_bytes(f"{order_id}{comment}\r\n".encode())  # 1024 bytes before its CRLF
    code, out, err = await invoke("cancel", "--json", "--from-file", str(path))
    assert code == 0, err
    assert json.loads(out)["counts"]["cancelled"] == 1


async def test_a_file_too_large_is_refused(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(idfile, "MAX_FILE_BYTES", 1000)  # 64 MiB, made small to test
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"01K2PF9XS29WN4JZRHMCT{i:05d}\n" for i in range(100)))
    code, _, err = await invoke("cancel", "--from-file", str(path))
    assert code == 2
    assert err == f"error: cannot read ids from {path}: more than 1000 bytes\n"
    assert sim.stats.requests == 0


async def test_too_many_ids_are_refused(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idfile, "MAX_IDS", 10)  # a million, made small to test
    monkeypatch.setattr(sys, "stdin", _binary_stdin(b"A\n" * 11))
    code, _, err = await invoke("cancel", "--from-file", "-")
    assert code == 2
    assert err == "error: cannot read ids from stdin: more than 10 ids\n"


async def test_a_file_that_is_not_text_is_refused(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path
) -> None:
    path = tmp_path / "ids.bin"
    path.write_bytes(b"01K2PF9XS29WN4JZRHMCTTQYJB\n\xff\xfe\x00\n")
    code, _, err = await invoke("cancel", "--from-file", str(path))
    assert code == 2
    assert err == f"error: cannot read ids from {path}: line 2 is not UTF-8 text\n"


async def test_a_byte_order_mark_is_not_part_of_the_first_id(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path
) -> None:
    ids = sim.add_orders(2)
    path = tmp_path / "ids.txt"
    path.write_bytes(("\ufeff" + "\r\n".join(ids) + "\r\n").encode())  # saved by Notepad
    code, out, err = await invoke("cancel", "--json", "--from-file", str(path))
    assert code == 0, err
    assert json.loads(out)["counts"]["cancelled"] == 2
