"""An inbox directory that receives messages atomically: a body is written under a hidden
temporary name and renamed to its final name only once the whole message arrived, so a
crash or a failed transfer never leaves a half file under a final name."""

from __future__ import annotations

import mimetypes
import os
import re
from pathlib import Path
from typing import Any, Dict, Optional

from twisted.python.failure import Failure

from msrplib._incoming import IncomingMessage
from msrplib.session import MessageReceiver

__all__ = ["Inbox", "InboxFile", "InboxReceiver", "file_name_of"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_FILENAME = re.compile(r'filename\*?=(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)


def file_name_of(message: IncomingMessage) -> Optional[str]:
    """The file name a sender gave in ``Content-Disposition``, made safe, or ``None``."""
    disposition = message.headers.get("Content-Disposition") or ""
    match = _FILENAME.search(disposition)
    if match is None:
        return None
    name = os.path.basename((match.group(1) or match.group(2)).replace("\\", "/"))
    name = _UNSAFE.sub("_", name).lstrip(".")
    return name or None


class InboxFile:
    """A message body on its way into the inbox; a binary file for the session to write."""

    def __init__(self, temporary: Path, final: Path) -> None:
        self.temporary = temporary
        self.final = final
        self.file: Any = open(temporary, "w+b")

    def commit(self) -> Path:
        """Flush, sync and rename to the final name; return it."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.temporary, self.final)
        return self.final

    def discard(self) -> None:
        """Drop the partial body."""
        self.file.close()
        try:
            os.unlink(self.temporary)
        except FileNotFoundError:
            pass


class Inbox:
    """Files incoming messages as ``<session>-<message-id>[-<name>]<extension>``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def open(self, session_id: str, message: IncomingMessage) -> InboxFile:
        """A temporary file for ``message``'s body, with its final name decided."""
        stem = _UNSAFE.sub("_", "%s-%s" % (session_id, message.message_id))
        name = file_name_of(message)
        if name is not None:
            final = "%s-%s" % (stem, name)
        else:
            media = (message.content_type or "").split(";")[0].strip()
            final = stem + (mimetypes.guess_extension(media) or ".bin")
        return InboxFile(self.directory / (".%s.part" % stem), self.directory / final)


class InboxReceiver(MessageReceiver):
    """A :class:`~msrplib.session.MessageReceiver` that files every message in an inbox.

    Subclasses hear the outcome through :meth:`filed` and :meth:`discarded`.
    """

    def __init__(self, inbox: Inbox, session_id: str) -> None:
        self.inbox = inbox
        self.session_id = session_id
        self._files: Dict[str, InboxFile] = {}

    def message_started(self, message: IncomingMessage) -> Any:
        target = self.inbox.open(self.session_id, message)
        self._files[message.message_id or ""] = target
        return target.file

    def message_received(self, message: IncomingMessage) -> None:
        self.filed(message, self._files.pop(message.message_id or "").commit())

    def message_failed(self, message: IncomingMessage, reason: Failure) -> None:
        target = self._files.pop(message.message_id or "", None)
        if target is not None:
            target.discard()
        self.discarded(message, reason)

    def filed(self, message: IncomingMessage, path: Path) -> None:
        """``message`` is complete and in the inbox at ``path``."""

    def discarded(self, message: IncomingMessage, reason: Failure) -> None:
        """``message`` failed; nothing of it is left in the inbox."""
