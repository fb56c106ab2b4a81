"""How the CLI writes: every byte or an error (short writes), and tables that fit the width."""

from __future__ import annotations

import errno
import io
import json
import os
from collections.abc import Iterator

import pytest

from frontoffice_async.cli import output
from frontoffice_async.cli.process import OutputError

DOCUMENT = {"outcomes": [{"order_id": f"01K2PF9XS29WN4JZRHMCT{i:05d}"} for i in range(200)]}


class ShortWrites(io.RawIOBase):
    """A raw stdout (`python -u`) that takes at most `chunk` bytes a write, then, after
    `limit` bytes, raises `error`, or takes nothing (`error` None)."""

    def __init__(
        self,
        chunk: int = 7,
        limit: int | None = None,
        error: OSError | None = None,
        fd: int | None = None,
    ) -> None:
        self.data = bytearray()
        self.chunk = chunk
        self.limit = limit
        self.error = error
        self.fd = fd
        self.would_block = 0

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, "no descriptor")
        return self.fd

    def write(self, b: object) -> int | None:
        data = bytes(memoryview(b))  # type: ignore[arg-type]
        if self.would_block:
            self.would_block -= 1
            return None
        if self.limit is not None and len(self.data) >= self.limit:
            if self.error is not None:
                raise self.error
            return 0
        taken = data[: self.chunk]
        self.data += taken
        return len(taken)


def text_stream(raw: io.RawIOBase) -> io.TextIOWrapper:
    """stdout as Python makes it under PYTHONUNBUFFERED: a text layer on the raw file."""
    return io.TextIOWrapper(raw, encoding="utf-8", write_through=True)  # type: ignore[arg-type]


@pytest.fixture
def pipe_fd() -> Iterator[int]:
    """The write end of an empty pipe: a descriptor that `select` finds writable at once."""
    read_end, write_end = os.pipe()
    yield write_end
    os.close(read_end)
    os.close(write_end)


def test_a_short_write_is_carried_on_until_the_document_is_whole() -> None:
    raw = ShortWrites(chunk=7)
    output.print_json(DOCUMENT, out=text_stream(raw))
    assert json.loads(raw.data) == DOCUMENT


def test_a_stdout_that_would_block_is_waited_for(pipe_fd: int) -> None:
    raw = ShortWrites(chunk=4096, fd=pipe_fd)
    raw.would_block = 3
    output.print_json(DOCUMENT, out=text_stream(raw))
    assert json.loads(raw.data) == DOCUMENT


def test_a_reader_gone_after_a_short_write_is_a_broken_pipe() -> None:
    raw = ShortWrites(chunk=10, limit=10, error=BrokenPipeError(errno.EPIPE, "Broken pipe"))
    with pytest.raises(BrokenPipeError):  # exit 141, as for plain output
        output.print_json(DOCUMENT, out=text_stream(raw))


def test_a_failed_write_after_a_short_one_is_an_output_error() -> None:
    raw = ShortWrites(limit=10, error=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OutputError, match="No space left on device"):  # exit 74
        output.print_json(DOCUMENT, out=text_stream(raw))


def test_a_stdout_that_takes_nothing_is_an_output_error() -> None:
    raw = ShortWrites(limit=10, error=None)
    with pytest.raises(OutputError, match="took none"):
        output.print_json(DOCUMENT, out=text_stream(raw))


def test_text_tables_are_written_whole_too() -> None:
    raw = ShortWrites(chunk=3)
    accounts = [f"{i:024x}" for i in range(50)]
    output.say("\n".join(accounts), out=text_stream(raw))
    assert raw.data.decode().split() == accounts
