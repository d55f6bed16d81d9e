"""The files the service may send: regular files under the ``--outbox`` directories.

The control API's ``POST /sessions/<id>/files`` names a local file. Whoever holds the
API's credential could otherwise have the service send any file it can read to a peer of
their choosing, so :meth:`Outbox.open` opens a file only when:

- the path is absolute and has no ``..`` component (400 otherwise);
- with every symbolic link resolved, it lies under one of the outbox directories (403
  otherwise: a path outside them, or a link that leads out);
- it is a regular file (400 otherwise: FIFOs, devices, sockets and directories are never
  opened, so opening cannot block or have a device's side effects).

The file is then opened one path component at a time from the outbox directory, none of
them followed if it became a symbolic link meanwhile, and checked to be the very file
that was looked at. :meth:`Outbox.open` blocks (the disk may be slow): run it in a thread.
"""

from __future__ import annotations

import email.utils
import errno
import os
import stat
from typing import BinaryIO, List, Sequence

__all__ = ["Outbox", "OutboxRefused", "attachment_header"]

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY


class OutboxRefused(Exception):
    """The file may not be sent; ``status`` is the control API's answer (400 or 403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def attachment_header(name: str) -> str:
    """A ``Content-Disposition`` value naming a file, whatever the name holds: a quoted
    string (quotes and backslashes escaped) for a printable name, else RFC 2231's
    percent-encoded UTF-8, so that no character is lost and none (a line break) can start a
    header of its own. ``IncomingMessage.file_name`` reads both back."""
    if name.isprintable() and name == name.strip():
        return 'attachment; filename="%s"' % name.replace("\\", "\\\\").replace('"', '\\"')
    return "attachment; filename*=%s" % email.utils.encode_rfc2231(name, "utf-8")


class Outbox:
    """The directories whose regular files may be sent (none: sending files is off)."""

    def __init__(self, directories: Sequence[str] = ()) -> None:
        self.directories: List[str] = [os.path.realpath(d) for d in directories]

    def open(self, path: str) -> BinaryIO:
        """Open ``path`` for sending, or raise :class:`OutboxRefused` without having
        opened anything that is not a regular file under an outbox directory."""
        if not self.directories:
            raise OutboxRefused("sending files is off: the service has no --outbox", 403)
        try:
            encoded = os.fsencode(path)
        except UnicodeError:
            raise OutboxRefused("the file name is not valid text", 400) from None
        if b"\0" in encoded:
            raise OutboxRefused("the file name holds a NUL character", 400)
        if not os.path.isabs(path):
            raise OutboxRefused("the file must be an absolute path", 400)
        if ".." in path.split(os.sep):
            raise OutboxRefused("the file's path may not hold '..'", 400)
        real = os.path.realpath(path)
        for directory in self.directories:
            if os.path.commonpath([directory, real]) == directory and real != directory:
                return self._open_under(directory, os.path.relpath(real, directory))
        raise OutboxRefused("%s is not in an outbox directory" % path, 403)

    def _open_under(self, directory: str, relative: str) -> BinaryIO:
        *parents, name = relative.split(os.sep)
        try:
            descriptor = os.open(directory, _DIRECTORY_FLAGS)
        except OSError as error:
            raise _refusal(error) from None
        try:
            for parent in parents:
                inner = os.open(parent, _DIRECTORY_FLAGS, dir_fd=descriptor)
                os.close(descriptor)
                descriptor = inner
            return _open_regular(name, descriptor)
        except OSError as error:
            raise _refusal(error) from None
        finally:
            os.close(descriptor)


def _open_regular(name: str, directory: int) -> BinaryIO:
    """Open ``name`` in ``directory`` if it is a regular file, without following a link."""
    looked = os.stat(name, dir_fd=directory, follow_symlinks=False)
    if not stat.S_ISREG(looked.st_mode):
        raise OutboxRefused("%s is not a regular file" % name, 400)
    descriptor = os.open(name, _FILE_FLAGS, dir_fd=directory)
    opened = os.fstat(descriptor)
    if not stat.S_ISREG(opened.st_mode) or \
            (opened.st_dev, opened.st_ino) != (looked.st_dev, looked.st_ino):
        os.close(descriptor)
        raise OutboxRefused("%s changed while it was opened" % name, 403)
    return os.fdopen(descriptor, "rb")


def _refusal(error: OSError) -> OutboxRefused:
    """The control API's answer to an error opening a file in the outbox."""
    reason = error.strerror or str(error)
    if isinstance(error, PermissionError):
        return OutboxRefused("the file cannot be read: %s" % reason, 403)
    if error.errno == errno.ELOOP:
        return OutboxRefused("a link in the path changed while it was opened", 403)
    return OutboxRefused("the file cannot be opened: %s" % reason, 400)
