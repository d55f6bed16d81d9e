"""An inbox directory that keeps every message a peer sends, whole, under a name of its own.

How a message is filed:

- Its body is written, as it arrives, to a temporary file made with ``mkstemp``: hidden
  (``.msrp-<pid>-<random>.part``), mode 0600, unique whatever the Message-ID.
- Once every byte arrived, the file is synced and linked to its final name, then the
  temporary name goes; only then does the session send the success REPORT. A crash or a
  failed transfer never leaves a half file under a final name, and no success REPORT goes
  out for a message that is not in the inbox.
- The final name is ``<namespace>-<message-id>[-<file name>]<extension>``, every part made
  safe (letters, digits, ``._+-``; anything else becomes ``_``) and capped in length, the
  extension kept. A name that is taken (the same Message-ID twice, or two that are made
  safe to the same text) gets a random suffix: a final name is made with ``link``, which
  never replaces a file, so nothing in the inbox is ever overwritten.
- If storing fails (disk full, file too large, permission...), the partial file is
  removed and the sender gets a failure REPORT (413, with the reason) instead of a success
  REPORT. A failed write does not stop the session: the rest of the message is dropped.
- Temporary files left by a process that was killed are removed when an inbox opens.

Syncing and linking run in a thread, so the reactor never waits for the disk; a session's
messages are filed one after the other, in the order they completed.
"""

from __future__ import annotations

import errno
import mimetypes
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._incoming import IncomingMessage
from msrplib.errors import MSRPError
from msrplib.session import MessageReceiver

__all__ = ["Inbox", "InboxFile", "InboxReceiver", "StoreFailed", "file_name_of", "final_name",
           "MAX_NAME_PART", "MAX_EXTENSION"]

#: The most characters each part of a final name (namespace, Message-ID, file name) keeps.
MAX_NAME_PART = 64
#: The most characters of an extension that a final name keeps (the dot included).
MAX_EXTENSION = 16

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_FILENAME = re.compile(r'filename\*?=(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)
_TEMPORARY = re.compile(r"\A\.msrp-(\d+)-[^/]*\.part\Z")

#: How many random suffixes are tried for a name that is taken before storing fails.
_NAME_ATTEMPTS = 100


class StoreFailed(MSRPError):
    """A message could not be stored in the inbox; the sender hears ``code`` (413: send this
    message no more) and ``comment`` in a failure REPORT."""

    code = 413
    comment = "Could not store the message"


def _store_failed(error: OSError) -> StoreFailed:
    """The failure REPORT's reason for a storage error: the system's words for it (never a
    path)."""
    reason = os.strerror(error.errno) if error.errno else "I/O error"
    return StoreFailed("storing a message failed: %s" % reason,
                       comment="Could not store the message: %s" % reason)


def _safe(text: str, limit: int = MAX_NAME_PART) -> str:
    return _UNSAFE.sub("_", text)[:limit]


def file_name_of(message: IncomingMessage) -> Optional[str]:
    """The file name a sender gave in ``Content-Disposition``, made safe, or ``None``."""
    disposition = message.headers.get("Content-Disposition") or ""
    match = _FILENAME.search(disposition)
    if match is None:
        return None
    name = os.path.basename((match.group(1) or match.group(2)).replace("\\", "/"))
    name = _UNSAFE.sub("_", name).lstrip(".")
    return name or None


def _split_extension(name: str) -> Tuple[str, str]:
    stem, extension = os.path.splitext(name)
    if len(extension) > MAX_EXTENSION:
        return name, ""
    return stem, extension


def final_name(namespace: str, message: IncomingMessage) -> Tuple[str, str]:
    """``(stem, extension)`` of ``message``'s name in the inbox, before any suffix."""
    stem = "%s-%s" % (_safe(namespace), _safe(message.message_id or "no-id"))
    if stem.startswith("."):
        stem = "_" + stem[1:]  # never hidden, never like a temporary file
    name = file_name_of(message)
    if name is not None:
        name_stem, extension = _split_extension(name)
        return "%s-%s" % (stem, name_stem[:MAX_NAME_PART]), extension
    media = (message.content_type or "").split(";")[0].strip()
    return stem, mimetypes.guess_extension(media) or ".bin"


class _Writer:
    """The binary file a session writes a body to. The first error of a write is kept
    (and later writes dropped) rather than raised into the session: it fails the message
    when it is stored."""

    def __init__(self, file: Any, error: Optional[OSError] = None) -> None:
        self.file = file
        self.error = error

    def seek(self, offset: int) -> None:
        if self.error is None:
            try:
                self.file.seek(offset)
            except OSError as error:
                self.error = error
            except (OverflowError, ValueError):  # an offset no file can have
                self.error = OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    def write(self, data: bytes) -> None:
        if self.error is None:
            try:
                self.file.write(data)
            except OSError as error:
                self.error = error

    def flush(self) -> None:
        if self.error is None:
            try:
                self.file.flush()
            except OSError as error:
                self.error = error


class InboxFile:
    """A message body on its way into the inbox.

    ``writer`` is the binary file the session writes to; :meth:`commit` (blocking: run it
    in a thread) moves it to its final name, :meth:`discard` drops it.
    """

    def __init__(self, directory: Path, stem: str, extension: str) -> None:
        self.directory = directory
        self.stem = stem
        self.extension = extension
        self.temporary: Optional[Path] = None
        try:
            descriptor, name = tempfile.mkstemp(prefix=".msrp-%d-" % os.getpid(),
                                                suffix=".part", dir=str(directory))
        except OSError as error:
            self.writer = _Writer(None, error)
            return
        self.temporary = Path(name)
        self.writer = _Writer(os.fdopen(descriptor, "w+b"))

    def commit(self) -> Path:
        """Sync the body, give it its final name, drop the temporary one; return the final
        path. Raises :class:`StoreFailed` (having removed the partial file) when any of it
        fails."""
        try:
            final = self._store()
        except OSError as error:
            self.discard()
            raise _store_failed(error) from error
        self._remove_temporary()
        return final

    def _store(self) -> Path:
        if self.writer.error is not None:
            raise self.writer.error
        file = self.writer.file
        file.flush()
        os.fsync(file.fileno())
        file.close()
        final = self._link()
        try:
            self._sync_directory()
        except OSError:
            os.unlink(final)  # not known to be on disk: no success REPORT for it
            raise
        return final

    def _link(self) -> Path:
        """Link the temporary file to a free final name (``link`` never replaces one)."""
        assert self.temporary is not None
        name = self.stem + self.extension
        for _ in range(_NAME_ATTEMPTS):
            final = self.directory / name
            try:
                os.link(self.temporary, final)
                return final
            except FileExistsError:
                name = "%s-%s%s" % (self.stem, secrets.token_hex(4), self.extension)
        raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))

    def _sync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def discard(self) -> None:
        """Drop the partial body."""
        if self.writer.file is not None:
            try:
                self.writer.file.close()
            except OSError:
                pass
        self._remove_temporary()

    def _remove_temporary(self) -> None:
        if self.temporary is not None:
            try:
                os.unlink(self.temporary)
            except OSError:
                pass  # a leftover: the next inbox opened on this directory removes it


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


def _in_thread(function: Callable[[], Any]) -> Deferred:
    from twisted.internet.threads import deferToThread
    return deferToThread(function)


class Inbox:
    """A directory that incoming messages are filed in (see the module's documentation).

    ``run_blocking(function)`` runs the blocking part of storing a message and returns a
    Deferred with its result: by default in the reactor's thread pool.
    """

    log = Logger()

    def __init__(self, directory: str,
                 run_blocking: Callable[[Callable[[], Any]], Deferred] = _in_thread) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.run_blocking = run_blocking
        self.remove_leftovers()

    def remove_leftovers(self) -> None:
        """Remove the temporary files of processes that no longer run."""
        for entry in os.scandir(self.directory):
            match = _TEMPORARY.match(entry.name)
            if match is not None and not _process_exists(int(match.group(1))):
                try:
                    os.unlink(entry.path)
                except OSError as error:
                    self.log.warn("could not remove {name}: {error}", name=entry.name,
                                  error=error)

    def open(self, namespace: str, message: IncomingMessage) -> InboxFile:
        """A temporary file for ``message``'s body, with its final name's stem decided.

        ``namespace`` starts the name (a session id, a run of ``msrp listen``...). Never
        raises: an error making the file fails the message when it is stored.
        """
        stem, extension = final_name(namespace, message)
        return InboxFile(self.directory, stem, extension)

    def store(self, target: InboxFile) -> Deferred:
        """Commit ``target`` without blocking the reactor; fire with its final path, or fail
        (with :class:`StoreFailed` for a storage error) having removed the partial file."""

        def failed(failure: Failure) -> Failure:
            target.discard()  # already done by a commit that failed; not by one never run
            return failure

        return maybeDeferred(self.run_blocking, target.commit).addErrback(failed)


class InboxReceiver(MessageReceiver):
    """A :class:`~msrplib.session.MessageReceiver` that files every message in an inbox.

    ``message_received`` returns a Deferred that fires once the message is under its final
    name, so the success REPORT waits for it; storing a session's messages happens one at a
    time, in order. Subclasses hear the outcome through :meth:`filed` (before the success
    REPORT goes out) and :meth:`discarded`.
    """

    log = Logger()

    def __init__(self, inbox: Inbox, namespace: str) -> None:
        self.inbox = inbox
        self.namespace = namespace
        self._files: Dict[IncomingMessage, InboxFile] = {}
        self._last_store: Deferred = succeed(None)

    def message_started(self, message: IncomingMessage) -> Any:
        target = self.inbox.open(self.namespace, message)
        self._files[message] = target
        return target.writer

    def message_received(self, message: IncomingMessage) -> Deferred:
        target = self._files.pop(message)
        stored: Deferred = Deferred()

        def store(_: Any) -> Deferred:
            result = self.inbox.store(target)
            result.addCallbacks(lambda path: self._filed(message, path, stored),
                                lambda failure: self._not_filed(message, failure, stored))
            return result.addErrback(
                lambda failure: self.log.failure("filing {message!r} failed", failure,
                                                 message=message))

        # Whatever became of the message before, this one is stored after it.
        self._last_store = self._last_store.addBoth(store)
        return stored

    def _filed(self, message: IncomingMessage, path: Path, stored: Deferred) -> None:
        try:
            self.filed(message, path)
        except Exception:
            self.log.failure("filed() failed for {path}", path=path)
        stored.callback(path)

    def _not_filed(self, message: IncomingMessage, failure: Failure, stored: Deferred) -> None:
        try:
            self.discarded(message, failure)
        except Exception:
            self.log.failure("discarded() failed")
        stored.errback(failure)

    def all_stored(self) -> Deferred:
        """Fire once every message that completed so far is stored (or failed to be)."""
        done: Deferred = Deferred()

        def fire(result: Any) -> Any:
            done.callback(None)
            return result

        self._last_store.addBoth(fire)
        return done

    def message_failed(self, message: IncomingMessage, reason: Failure) -> None:
        target = self._files.pop(message, None)
        if target is not None:
            target.discard()
        self.discarded(message, reason)

    def filed(self, message: IncomingMessage, path: Path) -> None:
        """``message`` is complete and in the inbox at ``path``."""

    def discarded(self, message: IncomingMessage, reason: Failure) -> None:
        """``message`` failed; nothing of it is left in the inbox."""
