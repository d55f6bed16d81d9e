"""Delivery and display notifications (IMDN, RFC 5438) for chat messages in CPIM.

A sender asks for notifications with :func:`request_notifications`, which adds the
``imdn`` namespace, an ``imdn.Message-ID`` and ``imdn.Disposition-Notification`` to a
:class:`~msrplib.cpim.CPIMMessage`. The recipient answers with :func:`notification_for`:
a CPIM message carrying a ``message/imdn+xml`` document (:class:`Notification`) that names
the message and says what became of it (delivered, failed, displayed, processed...).
:func:`parse_notification` reads one back.

XML from peers goes through defusedxml with document type declarations forbidden: no
entity expansion (billion laughs), no external fetches. What it parses is checked
against RFC 5438's schema rules this module relies on, and anything else raises
:class:`IMDNParseError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import FrozenSet, Iterable, Optional
from xml.etree.ElementTree import Element, SubElement, tostring

from msrplib._xml import parse_document
from msrplib.cpim import (Address, CPIMMessage, CPIMParseError, format_datetime, is_token,
                          parse_datetime)

__all__ = ["IMDN_NAMESPACE", "IMDN_XML_NAMESPACE", "IMDN_CONTENT_TYPE", "MAX_IMDN_BYTES",
           "DISPOSITIONS", "STATUSES", "IMDNParseError", "Notification",
           "request_notifications", "requested", "imdn_message_id", "notification_for",
           "parse_notification", "is_notification", "requests_answered"]

#: The CPIM namespace of the IMDN headers.
IMDN_NAMESPACE = "urn:ietf:params:imdn"
#: The XML namespace of the notification documents.
IMDN_XML_NAMESPACE = "urn:ietf:params:xml:ns:imdn"
#: The Content-Type of a notification document.
IMDN_CONTENT_TYPE = "message/imdn+xml"
#: The largest notification document taken from a peer.
MAX_IMDN_BYTES = 64 * 1024
#: What ``imdn.Disposition-Notification`` may ask for.
DISPOSITIONS = ("positive-delivery", "negative-delivery", "processing", "display")
#: The statuses of each kind of notification.
STATUSES = {
    "delivery": ("delivered", "failed", "forbidden", "error"),
    "display": ("displayed", "forbidden", "error"),
    "processing": ("processed", "stored", "forbidden", "error"),
}


def requests_answered(kind: str, status: str) -> FrozenSet[str]:
    """The requests (``imdn.Disposition-Notification`` values) a notification of
    ``kind`` and ``status`` may answer: none other may bring it."""
    if kind == "delivery":
        return frozenset({"delivered": ["positive-delivery"],
                          "failed": ["negative-delivery"]}.get(
            status, ["positive-delivery", "negative-delivery"]))
    return frozenset([kind])


class IMDNParseError(ValueError):
    """A notification (or a request for one) that does not follow RFC 5438."""


def _tag(name: str) -> str:
    return "{%s}%s" % (IMDN_XML_NAMESPACE, name)


@dataclass(frozen=True)
class Notification:
    """One notification: which message (``message_id``, its ``imdn.Message-ID``, and
    ``sent_at``, its ``DateTime``), what ``kind`` (``delivery``, ``display`` or
    ``processing``) and ``status`` (see :data:`STATUSES`), and optionally who received
    it and the message's subject."""

    message_id: str
    sent_at: datetime
    kind: str
    status: str
    recipient_uri: Optional[str] = None
    original_recipient_uri: Optional[str] = None
    subject: Optional[str] = None
    #: ``sent_at`` as the message's ``DateTime`` wrote it, which the document repeats
    #: as it is (RFC 5438): a sender may match notifications by it.
    sent_at_text: Optional[str] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES.get(self.kind, ()):
            raise ValueError("no %r status for a %r notification" % (self.status, self.kind))

    def to_xml(self) -> bytes:
        """The ``message/imdn+xml`` document."""
        root = Element("imdn", xmlns=IMDN_XML_NAMESPACE)
        SubElement(root, "message-id").text = self.message_id
        SubElement(root, "datetime").text = self.sent_at_text or format_datetime(self.sent_at)
        for name, value in (("recipient-uri", self.recipient_uri),
                            ("original-recipient-uri", self.original_recipient_uri),
                            ("subject", self.subject)):
            if value is not None:
                SubElement(root, name).text = value
        status = SubElement(SubElement(root, self.kind + "-notification"), "status")
        SubElement(status, self.status)
        document = bytes(tostring(root, "utf-8", xml_declaration=False))
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + document

    @classmethod
    def from_xml(cls, data: bytes) -> Notification:
        """Parse a ``message/imdn+xml`` document safely; ``IMDNParseError`` when it is
        not one, or is hostile (a DTD, entities)."""
        try:
            root = parse_document(data, MAX_IMDN_BYTES, IMDN_XML_NAMESPACE, "imdn",
                                  "notification")
        except ValueError as error:
            raise IMDNParseError(str(error)) from None

        def text(name: str, required: bool) -> Optional[str]:
            found = root.findall(_tag(name))
            if len(found) > 1 or (required and not found):
                raise IMDNParseError("%s <%s> in the document" % (
                    "more than one" if found else "no", name))
            return (found[0].text or "").strip() if found else None

        message_id = text("message-id", True)
        moment = text("datetime", True)
        assert message_id is not None and moment is not None
        kinds = [kind for kind in STATUSES if root.find(_tag(kind + "-notification"))
                 is not None]
        if len(kinds) != 1:
            raise IMDNParseError("%s notification kinds in the document" % len(kinds))
        holder = root.find(_tag(kinds[0] + "-notification"))
        assert holder is not None
        statuses = holder.findall(_tag("status"))
        if len(statuses) != 1 or len(statuses[0]) < 1:
            raise IMDNParseError("not one status in the %s notification" % kinds[0])
        status = statuses[0][0].tag
        prefix = _tag("")
        if not status.startswith(prefix) or status[len(prefix):] not in STATUSES[kinds[0]]:
            raise IMDNParseError("no such %s status: <%s>" % (kinds[0], status[:100]))
        try:
            sent_at = parse_datetime(moment)
        except CPIMParseError as error:
            raise IMDNParseError(str(error)) from None
        return cls(message_id, sent_at, kinds[0], status[len(prefix):],
                   text("recipient-uri", False), text("original-recipient-uri", False),
                   text("subject", False), moment)


def request_notifications(message: CPIMMessage,
                          dispositions: Iterable[str] = ("positive-delivery", "display"),
                          message_id: Optional[str] = None) -> str:
    """Ask ``message``'s recipient for notifications; return the ``imdn.Message-ID``
    (``message_id`` or a new random one) that they will name. Adds the ``imdn``
    namespace (when not declared), the ``DateTime`` RFC 5438 requires (when missing),
    and the two headers. ``ValueError`` for an unknown disposition."""
    wanted = list(dispositions)
    unknown = [item for item in wanted if item not in DISPOSITIONS]
    if unknown or not wanted:
        raise ValueError("not dispositions to ask for: %r" % (unknown or wanted,))
    if not message.all("DateTime"):
        message.add("DateTime", format_datetime(datetime.now(timezone.utc)), escaped=True)
    prefix = message.prefix_of(IMDN_NAMESPACE)
    if prefix is None or prefix == "":
        prefix = "imdn"
        message.add("NS", "imdn <%s>" % IMDN_NAMESPACE, escaped=True)
    message_id = message_id or os.urandom(12).hex()
    if not is_token(message_id):
        raise ValueError("an imdn.Message-ID is a token: %r" % message_id[:64])
    message.add(prefix + ".Message-ID", message_id)
    message.add(prefix + ".Disposition-Notification", ", ".join(wanted), escaped=True)
    return message_id


def imdn_message_id(message: CPIMMessage) -> Optional[str]:
    """``message``'s ``imdn.Message-ID``, or ``None`` (also for one that is not the
    token RFC 5438 makes it)."""
    value = message.first("Message-ID", IMDN_NAMESPACE)
    return value if value is not None and is_token(value) else None


def requested(message: CPIMMessage) -> FrozenSet[str]:
    """The dispositions ``message`` asks for (empty when it asks for none, or has no
    ``imdn.Message-ID`` to name it by)."""
    value = message.first("Disposition-Notification", IMDN_NAMESPACE)
    if value is None or imdn_message_id(message) is None:
        return frozenset()
    return frozenset(item.strip() for item in value.split(",")) & frozenset(DISPOSITIONS)


def notification_for(original: CPIMMessage, kind: str, status: str,
                     sender: Optional[Address] = None,
                     moment: Optional[datetime] = None) -> CPIMMessage:
    """The CPIM message that notifies ``original``'s sender that it was ``kind``
    ``status`` (``"delivery", "delivered"``, ``"display", "displayed"``...). It goes
    from ``sender`` (by default the original's first ``To``) to the original's ``From``.
    ``ValueError`` when ``original`` did not ask for that notification (RFC 5438: none is
    sent unasked), or for a kind and status that do not go together."""
    message_id = imdn_message_id(original)
    if status not in STATUSES.get(kind, ()):
        raise ValueError("no %r status for a %r notification" % (status, kind))
    if message_id is None or original.moment is None or \
            not requested(original) & requests_answered(kind, status):
        raise ValueError("%s did not ask for a %s %s notification"
                         % (message_id or "the message", kind, status))
    recipients = original.recipients
    sender = sender or (recipients[0] if recipients else None)
    notification = Notification(message_id, original.moment, kind, status,
                                recipient_uri=sender.uri if sender else None,
                                original_recipient_uri=sender.uri if sender else None,
                                sent_at_text=original.first("DateTime"))
    message = CPIMMessage.build(
        notification.to_xml(), IMDN_CONTENT_TYPE, sender=sender,
        recipients=[original.sender] if original.sender else [], moment=moment,
        namespaces={"imdn": IMDN_NAMESPACE},
        headers=[("imdn.Message-ID", os.urandom(12).hex())],
        content_headers=[("Content-Disposition", "notification")])
    return message


def is_notification(message: CPIMMessage) -> bool:
    """Whether ``message`` carries a notification (its body is ``message/imdn+xml``)."""
    return message.content_type == IMDN_CONTENT_TYPE


def parse_notification(message: CPIMMessage) -> Notification:
    """The notification ``message`` carries; ``IMDNParseError`` when it carries none."""
    if not is_notification(message):
        raise IMDNParseError("not a notification: %s" % message.content_type)
    return Notification.from_xml(message.body)
