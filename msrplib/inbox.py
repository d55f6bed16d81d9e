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
messages are filed in the order they completed, as many at a time as are waiting, with one
sync of the directory for them. A message waiting to be stored holds no file open, and at
most ``MAX_WAITING_STORES`` may wait: past it a new message is refused with 413.
"""

from __future__ import annotations

import errno
import mimetypes
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib.errors import MSRPError
from msrplib.session import IncomingMessage, MessageReceiver

__all__ = ["Inbox", "InboxFile", "InboxReceiver", "StoreFailed", "file_name_of", "final_name",
           "sync_directory", "MAX_NAME_PART", "MAX_EXTENSION", "MAX_WAITING_STORES"]

#: The most characters each part of a final name (namespace, Message-ID, file name) keeps.
MAX_NAME_PART = 64
#: The most characters of an extension that a final name keeps (the dot included).
MAX_EXTENSION = 16

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_TEMPORARY = re.compile(r"\A\.msrp-(\d+)-[^/]*\.part\Z")

#: How many random suffixes are tried for a name that is taken before storing fails.
_NAME_ATTEMPTS = 100

#: Messages of a session that may wait to be stored at once (see InboxReceiver).
MAX_WAITING_STORES = 256

#: The failure REPORT's code and comment when storing failed without a system error.
NOT_STORED_CODE = 413


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
    given = message.file_name
    if given is None:
        return None
    name = os.path.basename(given.replace("\\", "/"))
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
        if self.error is None and self.file is not None:
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

    def close(self) -> None:
        """The body is whole: close its file (a message waiting to be stored holds no file
        open). An error here fails the message when it is stored."""
        self.writer.flush()
        file, self.writer.file = self.writer.file, None
        if file is not None:
            try:
                file.close()
            except OSError as error:
                if self.writer.error is None:
                    self.writer.error = error

    def commit(self) -> Path:
        """Sync the body, give it its final name; return the final path (blocking: run it
        in a thread). The directory still has to be synced (:func:`sync_directory`) before
        the name is known to be on disk. Raises :class:`StoreFailed` (having removed the
        partial file) when any of it fails."""
        self.close()
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
        assert self.temporary is not None
        descriptor = os.open(self.temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return self._link()

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


def sync_directory(directory: Path) -> None:
    """Make the names just given in ``directory`` durable (blocking)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _commit_all(directory: Path, targets: List[InboxFile]) -> List[Any]:
    """Commit each of ``targets``, then sync ``directory`` once: the final path of each, or
    the :class:`StoreFailed` it failed with (blocking: run it in a thread). A name whose
    directory could not be synced is taken back: it is not known to be on disk."""
    outcomes: List[Any] = []
    for target in targets:
        try:
            outcomes.append(target.commit())
        except StoreFailed as error:
            outcomes.append(error)
    if any(isinstance(outcome, Path) for outcome in outcomes):
        try:
            sync_directory(directory)
        except OSError as error:
            failed = _store_failed(error)
            for index, outcome in enumerate(outcomes):
                if isinstance(outcome, Path):
                    try:
                        os.unlink(outcome)
                    except OSError:
                        pass
                    outcomes[index] = failed
    return outcomes


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


def _in_thread(function: Callable[[], Any]) -> Deferred[Any]:
    from twisted.internet.threads import deferToThread
    return deferToThread(function)


class Inbox:
    """A directory that incoming messages are filed in (see the module's documentation).

    ``run_blocking(function)`` runs the blocking part of storing a message and returns a
    Deferred with its result: by default in the reactor's thread pool.
    """

    log = Logger()

    def __init__(self, directory: str,
                 run_blocking: Callable[[Callable[[], Any]], Deferred[Any]] = _in_thread) -> None:
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

    def store(self, targets: List[InboxFile]) -> Deferred[Any]:
        """Commit ``targets`` without blocking the reactor, one directory sync for all;
        fire with the final path of each, or the :class:`StoreFailed` it failed with
        (having removed its partial file)."""

        def failed(failure: Failure) -> List[Any]:
            for target in targets:
                target.discard()  # done already by a commit that failed; not by one never run
            error = failure.value if isinstance(failure.value, StoreFailed) else \
                StoreFailed(str(failure.value), NOT_STORED_CODE, "Could not store the message")
            return [error for _ in targets]

        return maybeDeferred(self.run_blocking,
                             lambda: _commit_all(self.directory, targets)).addErrback(failed)


class InboxReceiver(MessageReceiver):
    """A :class:`~msrplib.session.MessageReceiver` that files every message in an inbox.

    ``message_received`` returns a Deferred that fires once the message is under its final
    name, so the success REPORT waits for it. A session's messages are stored in order, as
    many at a time as are waiting, with one directory sync for them. At most
    ``max_waiting`` messages may wait to be stored: past it a new message is refused with
    413 at its first chunk, so a peer that sends faster than the disk keeps up is slowed,
    and holds no file open while it waits. Subclasses hear the outcome through
    :meth:`filed` (before the success REPORT goes out) and :meth:`discarded`.
    """

    log = Logger()

    def __init__(self, inbox: Inbox, namespace: str,
                 max_waiting: int = MAX_WAITING_STORES) -> None:
        self.inbox = inbox
        self.namespace = namespace
        self.max_waiting = max_waiting
        self._files: Dict[IncomingMessage, InboxFile] = {}
        self._waiting: List[Tuple[IncomingMessage, InboxFile, Deferred[Any]]] = []
        self._storing: Optional[Deferred[Any]] = None
        self._stored_waiters: List[Deferred[Any]] = []

    def message_started(self, message: IncomingMessage) -> Any:
        if len(self._waiting) >= self.max_waiting:
            raise MSRPError("more than %d messages wait to be stored" % self.max_waiting,
                            413, "Too many messages waiting")
        target = self.inbox.open(self.namespace, message)
        self._files[message] = target
        return target.writer

    def message_received(self, message: IncomingMessage) -> Deferred[Any]:
        target = self._files.pop(message)
        target.close()
        stored: Deferred[Any] = Deferred()
        self._waiting.append((message, target, stored))
        if self._storing is None:
            self._store_waiting()
        return stored

    def _store_waiting(self) -> None:
        """Store every message waiting, in one go; then those that came meanwhile."""
        batch, self._waiting = self._waiting, []
        if not batch:
            self._storing = None
            waiters, self._stored_waiters = self._stored_waiters, []
            for waiter in waiters:
                waiter.callback(None)
            return
        self._storing = self.inbox.store([target for _, target, _ in batch])

        def stored(outcomes: List[Any]) -> None:
            for (message, _, result), outcome in zip(batch, outcomes):
                if isinstance(outcome, Path):
                    self._filed(message, outcome, result)
                else:
                    self._not_filed(message, Failure(outcome), result)
            self._store_waiting()

        self._storing.addCallback(stored).addErrback(
            lambda failure: self.log.failure("filing failed", failure))

    def _filed(self, message: IncomingMessage, path: Path, stored: Deferred[Any]) -> None:
        try:
            self.filed(message, path)
        except Exception:
            self.log.failure("filed() failed for {path}", path=path)
        stored.callback(path)

    def _not_filed(self, message: IncomingMessage, failure: Failure, stored: Deferred[Any]) -> None:
        try:
            self.discarded(message, failure)
        except Exception:
            self.log.failure("discarded() failed")
        stored.errback(failure)

    def all_stored(self) -> Deferred[Any]:
        """Fire once every message that completed so far is stored (or failed to be)."""
        if self._storing is None and not self._waiting:
            return succeed(None)
        done: Deferred[Any] = Deferred()
        self._stored_waiters.append(done)
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
