"""A window onto a binary file, seen as a file of its own: what the transfer of an RFC 5547
``a=file-range`` reads from the sender's file, or writes into the receiver's."""

from __future__ import annotations

import os
from typing import Any, Optional

__all__ = ["FilePart"]


class FilePart:
    """Bytes ``start`` to ``start + length`` (zero-based; ``length`` ``None``: to the end)
    of ``file``, read and written as if they were a file: offsets, ``tell``, ``seek`` and
    the end are the window's. The file itself is shared, so each call seeks it first."""

    def __init__(self, file: Any, start: int, length: Optional[int] = None) -> None:
        if start < 0 or (length is not None and length < 0):
            raise ValueError("a file part starts at 0 or later and is not of negative length")
        self.file = file
        self.start = start
        self.length = length
        self._position = 0

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        else:
            position = self._end() + offset
        if position < 0:
            raise ValueError("negative seek position %d" % position)
        self._position = position
        return position

    def read(self, size: int = -1) -> bytes:
        left = self._end() - self._position
        if left <= 0:
            return b""
        count = left if size is None or size < 0 else min(size, left)
        self.file.seek(self.start + self._position)
        data: bytes = self.file.read(count)
        self._position += len(data)
        return data

    def write(self, data: bytes) -> int:
        if self.length is not None and self._position + len(data) > self.length:
            raise ValueError("writing past the end of the file part")
        self.file.seek(self.start + self._position)
        self.file.write(data)
        self._position += len(data)
        return len(data)

    def flush(self) -> None:
        self.file.flush()

    def _end(self) -> int:
        """The window's length: ``length``, or what the file holds after ``start``."""
        if self.length is not None:
            return self.length
        end: int = self.file.seek(0, os.SEEK_END)
        return max(0, end - self.start)
