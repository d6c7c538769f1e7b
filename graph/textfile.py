"""Reading a text file line by line, plain or compressed, counting the bytes read for progress bars."""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from pymk.errors import InputFormatError

CHUNK_BYTES = 1 << 20


def _opener(head: bytes) -> Callable[[BinaryIO], BinaryIO] | None:
    """The decompressing file class for a file starting with `head` (its magic bytes, whatever its name)."""
    if head.startswith(b"\x1f\x8b"):
        return lambda f: gzip.GzipFile(fileobj=f)
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":   # bzip2: "BZh", block size, the block magic
        return bz2.BZ2File
    return None


class ByteCounter:
    """Iterates a binary file's decoded lines while counting bytes read (for progress bars). A gzip or
    bzip2 file (as SNAP and KONECT ship them) is read decompressed; its progress counts compressed bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.bytes_read = 0

    def lines(self) -> Iterator[tuple[int, str | None]]:
        """(line number, text) pairs; text is None when the line is not valid UTF-8."""
        for number, chunk in self.chunks():
            yield from chunk_lines(number, chunk)

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[tuple[int, bytes]]:
        """The file in pieces of about `size` bytes cut after a line break (the last may end without one), each
        with the number of its first line: what `lines` yields, for a reader that parses many lines at once."""
        with open(self.path, "rb") as f:
            opener = _opener(f.read(10))
            f.seek(0)
            try:
                with opener(f) if opener is not None else f as raw:
                    number, carry = 1, b""
                    while piece := raw.read(size):
                        cut = piece.rfind(b"\n") + 1
                        if not cut:
                            carry += piece
                            continue
                        chunk, carry = carry + piece[:cut], piece[cut:]
                        self.bytes_read = f.tell() if opener is not None else self.bytes_read + len(chunk)
                        yield number, chunk
                        number += chunk.count(b"\n")
                    if carry:
                        self.bytes_read = self.size
                        yield number, carry
            except (EOFError, OSError) as exc:   # a truncated or corrupt archive
                if opener is None:
                    raise
                raise InputFormatError(f"{self.path}: cannot decompress ({exc})") from exc
            self.bytes_read = self.size


def chunk_lines(number: int, chunk: bytes) -> Iterator[tuple[int, str | None]]:
    """A chunk's lines (cut after each b"\\n"), numbered from `number`, decoded (None: not valid UTF-8)."""
    pieces = chunk.split(b"\n")
    if chunk.endswith(b"\n"):
        pieces.pop()
    for i, raw in enumerate(pieces):
        yield number + i, _decode(raw, number + i)


def _decode(raw: bytes, number: int) -> str | None:
    """The line's text; a byte-order mark opening the file (as spreadsheet exports write it) is not
    part of its first field."""
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None
