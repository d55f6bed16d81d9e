"""``twistd msrp``: the endpoint service and its control API, made from the plugin's
options (``twisted/plugins/msrplib_plugin.py`` parses them; ``twistd msrp --help`` lists
them)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

from twisted.application.service import MultiService

from msrplib.connect import MSRPRelaySettings
from msrplib.control import DEFAULT_CONTROL, ControlAPIService
from msrplib.controlaccess import DEFAULT_MAX_REQUEST_SIZE, DEFAULT_TOKEN_FILE, load_or_create_token
from msrplib.protocol import URI
from msrplib.service import (DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_EXPIRY, EVENT_TEXT_LIMIT,
                             MAX_EVENT_TEXT, EndpointOptions, MSRPEndpointService)
from msrplib.session import SessionSettings

__all__ = ["MSRPDaemon", "make_service", "relay_from_options"]


class MSRPDaemon(MultiService):
    """What ``twistd msrp`` runs: ``endpoint`` (an :class:`MSRPEndpointService`) and
    ``control`` (its :class:`ControlAPIService`). Stopping stops the control API first,
    then closes the sessions."""

    def __init__(self, endpoint: MSRPEndpointService, control: ControlAPIService) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.control = control
        endpoint.setServiceParent(self)
        control.setServiceParent(self)


def _password(config: Mapping[str, Any]) -> str:
    if config.get("password-file"):
        with open(config["password-file"], encoding="utf-8") as source:
            return source.read().strip()
    password = os.environ.get(config.get("password-env") or "MSRP_PASSWORD")
    if not password:
        raise ValueError("the relay password comes from --password-file or $%s"
                         % (config.get("password-env") or "MSRP_PASSWORD"))
    return password


def relay_from_options(config: Mapping[str, Any]) -> Optional[MSRPRelaySettings]:
    """``MSRPRelaySettings`` from the plugin's options, or ``None`` without ``--relay``."""
    if not config.get("relay"):
        return None
    uri = URI.parse(config["relay"])
    if not config.get("username"):
        raise ValueError("--relay needs --username")
    trust_root = None
    if config.get("relay-ca"):
        from twisted.internet.ssl import Certificate
        with open(config["relay-ca"], "rb") as source:
            trust_root = Certificate.loadPEM(source.read())
    return MSRPRelaySettings(config.get("domain") or uri.host or "", config["username"],
                             _password(config), host=uri.host, use_tls=uri.use_tls,
                             port=uri.port, verify_tls=not config.get("no-verify-relay"),
                             trust_root=trust_root)


def make_service(config: Mapping[str, Any], reactor: Any = None) -> MSRPDaemon:
    """The service for the plugin's parsed options (see ``twistd msrp --help``).

    Reads the control API's token from ``control-token-file``, or writes a new one there
    (mode 0600); raises ``CredentialError`` (a ``ValueError``) when that file cannot be
    used.
    """
    session_settings = SessionSettings(
        chunk_size=int(config.get("chunk-size") or SessionSettings.chunk_size),
        max_message_size=int(config.get("max-message-size") or 0) or None,
        keepalive_interval=float(config.get("keepalive") or 0))
    token_file = config.get("control-token-file") or DEFAULT_TOKEN_FILE
    token, _ = load_or_create_token(token_file)
    options = EndpointOptions(
        host=config.get("host") or "127.0.0.1", tls=bool(config.get("tls")),
        relay=relay_from_options(config), inbox=config.get("inbox") or "msrp-inbox",
        outbox=list(config.get("outbox") or []),
        traffic_log=bool(config.get("traffic-log")), session_settings=session_settings,
        max_sessions=int(config.get("max-sessions") or DEFAULT_MAX_SESSIONS),
        session_expiry=float(config.get("session-expiry") or DEFAULT_SESSION_EXPIRY),
        event_text_limit=int(config.get("event-text-limit") or EVENT_TEXT_LIMIT),
        max_event_text=int(config.get("max-event-text") or MAX_EVENT_TEXT))
    endpoint = MSRPEndpointService(options, reactor)
    control = ControlAPIService(
        endpoint, config.get("control") or DEFAULT_CONTROL, token,
        max_request_size=int(config.get("max-request-size") or DEFAULT_MAX_REQUEST_SIZE),
        token_file=token_file, reactor=reactor)
    return MSRPDaemon(endpoint, control)
