"""msrplib: the Message Session Relay Protocol (RFC 4975, relays RFC 4976) on Twisted."""

__version__ = "0.1.0"

__all__ = ["__version__"]
