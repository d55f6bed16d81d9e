"""Establishing MSRP connections (the seed's ``msrplib.connect``).

``ConnectorDirect`` and ``AcceptorDirect`` connect two endpoints without a relay;
``ConnectorRelay`` and ``AcceptorRelay`` go through an RFC 4976 relay described by
``MSRPRelaySettings`` (or a ``RelayConnection`` that several sessions share);
``MSRPServer`` shares one listening port among many sessions;
``get_connector()`` and ``get_acceptor()`` choose the class. Every ``prepare()`` and
``complete()`` returns a Deferred.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.logger import Logger

from msrplib._bind import ConnectionSettings
from msrplib._direct import AcceptorDirect, ConnectorDirect
from msrplib._relay import (AcceptorRelay, ConnectorRelay, MSRPAuthError, MSRPRelayNotFound,
                            MSRPRelaySettings, RelayConnection, locate_relay)
from msrplib._server import MSRPServer, default_host, new_session_id
from msrplib.errors import (MSRPBindError, MSRPBindSessionTimeout, MSRPConnectTimeout,
                            FingerprintMismatch)

__all__ = [
    "ConnectorDirect", "AcceptorDirect", "ConnectorRelay", "AcceptorRelay",
    "MSRPRelaySettings", "RelayConnection", "MSRPServer", "ConnectionSettings",
    "locate_relay",
    "MSRPAuthError", "MSRPRelayNotFound",
    "get_connector", "get_acceptor", "default_host", "new_session_id",
    "MSRPBindError", "MSRPBindSessionTimeout", "MSRPConnectTimeout", "FingerprintMismatch",
]


def get_connector(relay: Any, logger: Optional[Logger] = None, **options: Any) -> Any:
    """The connector for the calling side: ``ConnectorDirect`` when ``relay`` is ``None``,
    else ``ConnectorRelay(relay)``. ``options`` (``reactor``, ``settings``, and ``setup`` for
    a direct connector) go to the class.
    """
    if relay is None:
        return ConnectorDirect(logger, **options)
    return ConnectorRelay(relay, logger, **options)


def get_acceptor(relay: Any, logger: Optional[Logger] = None, use_acm: bool = False,
                 **options: Any) -> Any:
    """The acceptor for the answering side: ``AcceptorDirect`` when ``relay`` is ``None``,
    else ``AcceptorRelay(relay)``.

    ``use_acm`` is accepted for the seed API's sake and changes nothing: listening on one
    port shared by many sessions is ``MSRPServer``'s job.
    """
    if relay is None:
        return AcceptorDirect(logger, **options)
    return AcceptorRelay(relay, logger, **options)

