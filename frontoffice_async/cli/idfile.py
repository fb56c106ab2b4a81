"""Files of ids (`cancel --from-file`, `flatten --stop-orders`), read within bounds.

One entry a line; blank lines and `#` comments skipped; `-` is stdin. The bounds make
`/dev/zero` or a wrong file a usage error naming the line at fault, never a MemoryError, and
every entry is read before anything is sent.
"""

from __future__ import annotations

import itertools
import sys
from typing import IO

from .common import UsageError
from .process import in_thread

__all__ = ["MAX_FILE_BYTES", "MAX_IDS", "MAX_LINE_BYTES", "read_entries", "read_ids"]

#: Bounds of a file of ids (docs/cli.md), generous for any file of order ids (an id is at
#: most 128 characters, the rest of a line a comment) and small enough that `/dev/zero` or
#: a wrong file is refused at once. Module attributes, so that tests can make them small.
MAX_LINE_BYTES = 1024
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_IDS = 1_000_000


async def read_ids(path: str) -> list[str]:
    """The order ids of `path` (or stdin for `-`), one a line (`cancel --from-file`)."""
    return [text for _, text in await read_entries(path, kind="order")]


async def read_entries(path: str, *, kind: str) -> list[tuple[int, str]]:
    """The entries of `path` (or stdin for `-`) with their line numbers: each line without its
    `#` comment, stripped; blank ones skipped. `kind` names the ids in messages ("order",
    "stop-order").

    Read in a thread: at a terminal (or from a FIFO), Ctrl-C and SIGTERM must not wait for
    the end of the input. Read within bounds (`MAX_LINE_BYTES`, `MAX_FILE_BYTES`, `MAX_IDS`).
    """
    stdin = sys.stdin
    what = "stdin" if path == "-" else path
    noun = "ids" if kind == "order" else f"{kind} ids"
    if path == "-" and stdin is None:
        raise UsageError(f"cannot read {noun} from stdin: it is closed")
    reader = _Reader(what, noun, kind)
    try:
        if path == "-":
            # The bytes under the text layer when there are (a process's stdin), so that a
            # line is bounded in bytes and its decoding checked here; else the text itself.
            return await in_thread(lambda: reader.entries(getattr(stdin, "buffer", stdin)))
        return await in_thread(lambda: reader.file(path))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read {noun} from {what}: {reason}") from None


class _Reader:
    """Reads one source, refusing (UsageError) what no file of ids looks like."""

    def __init__(self, what: str, noun: str, kind: str) -> None:
        self.what = what
        self.noun = noun
        self.kind = kind

    def file(self, path: str) -> list[tuple[int, str]]:
        with open(path, "rb") as file:
            return self.entries(file)

    def entries(self, stream: IO[bytes] | IO[str]) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        size = 0
        for number in itertools.count(1):
            # One byte more than a line may hold: a longer line shows itself without being read.
            raw = stream.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            size += len(raw)
            line = self._line(raw, number)
            if size > MAX_FILE_BYTES:
                most = MAX_FILE_BYTES
                in_mib = f"{most >> 20} MiB" if most % (1 << 20) == 0 else f"{most} bytes"
                raise self._refused(f"more than {in_mib}")
            entry = line.split("#", 1)[0].strip()
            if entry:
                found.append((number, entry))
                if len(found) > MAX_IDS:
                    raise self._refused(f"more than {MAX_IDS:,} ids")
        return found

    def _line(self, raw: bytes | str, number: int) -> str:
        """Line `number` as text, without its end; UsageError if too long or not UTF-8."""
        if isinstance(raw, bytes):
            content: bytes | str = raw.rstrip(b"\r\n")
        else:
            content = raw.rstrip("\r\n")
        if len(content) > MAX_LINE_BYTES:
            raise self._refused(
                f"line {number} is longer than {MAX_LINE_BYTES} bytes (an order id is at most "
                f"128 characters): is it a file of {self.kind} ids?"
            )
        if isinstance(content, str):
            return content.removeprefix("\ufeff") if number == 1 else content
        try:
            # utf-8-sig on the first line: a byte order mark (Notepad) is not part of an id.
            return content.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise self._refused(f"line {number} is not UTF-8 text") from None

    def _refused(self, reason: str) -> UsageError:
        return UsageError(f"cannot read {self.noun} from {self.what}: {reason}")
