"""What a session and its connection know of each other (as amp's ``IBoxSender`` and
``IBoxReceiver``): a session writes chunks through an :class:`IChunkWriter` (the
connection's :class:`~msrplib.transport.MSRPProtocol`) and learns who it talks to from an
:class:`IMessageConnection` (the bound :class:`~msrplib.transport.MSRPTransport`), which
hands it every event the parser finds. Nothing else of the connection is the session's
business, so another way of carrying chunks (WebSocket, say) provides these two.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Optional

from zope.interface import Attribute, Interface

__all__ = ["IChunkWriter", "IMessageConnection"]


class IChunkWriter(Interface):  # type: ignore[misc]
    """The writing end of a connection: chunks out, in order, with its backpressure."""

    writing_paused = Attribute(
        "True while the connection's outgoing buffer is past its high-water mark: write no "
        "more until call_when_drained calls back.")
    takes_encoded_chunks = Attribute(
        "Whether write_encoded may be used now (no streamed body is open, nobody wants "
        "every chunk as an MSRPData).")
    lost = Attribute(
        "An Observer that fires with the reason the connection closed (a Failure).")

    def write_chunk(chunk: Any, check_body: bool = True) -> None:
        """Write ``chunk`` (an MSRPData), after whatever was written before it."""

    def write_encoded(head: bytes, body: bytes, end: bytes) -> None:
        """Write a chunk already encoded as its head, body and end-line."""

    def write_response(request: Any, code: int, comment: Optional[str] = None) -> None:
        """Answer ``request`` with ``code``."""

    def begin_body(chunk: Any) -> None:
        """Write ``chunk``'s start line and headers; its body follows in pieces."""

    def write_body(data: bytes) -> None:
        """Write the next piece of the body begun with begin_body."""

    def end_body(chunk: Any) -> None:
        """Write the end-line of the body begun with begin_body."""

    def call_when_drained(callback: Callable[[], None]) -> None:
        """Call ``callback()`` once writing is no longer paused (at once when it is not)."""

    def pause_reading(reason: Hashable) -> None:
        """Stop reading the peer's bytes for ``reason`` until resume_reading(reason)."""

    def resume_reading(reason: Hashable) -> None:
        """Drop ``reason`` to stop reading; read again once no reason is left."""

    def close() -> None:  # type: ignore[misc]
        """Close once what was written is sent."""

    def abort() -> None:  # type: ignore[misc]
        """Close now, dropping what was not sent."""


class IMessageConnection(Interface):  # type: ignore[misc]
    """A bound connection as its session sees it: who is at each end, what limits the
    path brings, and the stream of parser events."""

    writer = Attribute("The connection's IChunkWriter.")
    local_uri = Attribute("Our own URI (a msrplib.protocol.URI).")
    path_lines = Attribute(
        "The To-Path and From-Path lines (text, with their CRLFs) of the requests we send.")
    max_chunk_size = Attribute("The largest chunk body the path carries, or None.")
    max_unreported_bytes = Attribute(
        "How far a message sent with success reports may run ahead of the peer's REPORTs "
        "on this path, or None.")
    relayed = Attribute("Whether a relay answers our requests hop by hop.")
    logger = Attribute(
        "The twisted.logger.Logger the connection was given (the seed's logger argument), "
        "which the session logs through too; None when none was.")

    def new_headers() -> Any:  # type: ignore[misc]
        """Headers holding this connection's To-Path and From-Path, to build on."""

    def make_chunk(transaction_id: Optional[str] = None, method: str = "SEND",
                   code: Optional[int] = None, comment: Optional[str] = None,
                   data: bytes = b"", contflag: Optional[str] = None, start: int = 1,
                   end: Optional[int] = None, length: Optional[int] = None,
                   message_id: Optional[str] = None,
                   content_type: Optional[str] = None) -> Any:
        """A chunk addressed over this connection (the seed's make_chunk)."""

    def check_incoming_SEND_chunk(chunk: Any) -> Any:
        """None when ``chunk`` is addressed to us from our peer, else the MSRPError to
        answer (481, 403 or 400)."""

    def deliver_events_to(handler: Callable[[Any], None]) -> None:
        """Hand every parser event to ``handler`` from now on, queued ones first."""
