"""MSRP entities: URIs, chunks, headers and the incremental chunk parser.

This is the seed API's ``msrplib.protocol``. It is pure: nothing here touches the reactor or
a socket, so everything is tested with plain bytes. The code lives in private modules
(``_uri``, ``_headers``, ``_chunk``, ``_parser``); import it from here.
"""

from msrplib._headers import (MAX_DIGITS, AuthParams, ByteRange, HeaderField, Headers, Status,
                              format_path, parse_number, parse_path)
from msrplib._parser import (ChunkData, ChunkEnded, ChunkParser, ChunkStarted, ParserEvent,
                             ParserLimits)
from msrplib._uri import DEFAULT_PORT, URI, parse_uri
from msrplib._chunk import (CONTINUATION_FLAGS, RESPONSE_COMMENTS, MSRPData, make_report,
                           make_response, new_message_id, new_transaction_id)
from msrplib.errors import ChunkParseError, HeaderParseError, URIParseError

__all__ = [
    "URI", "parse_uri", "parse_path", "format_path", "DEFAULT_PORT",
    "MSRPData", "Headers", "HeaderField", "ByteRange", "Status", "AuthParams",
    "parse_number", "MAX_DIGITS",
    "make_response", "make_report", "new_transaction_id", "new_message_id",
    "RESPONSE_COMMENTS", "CONTINUATION_FLAGS",
    "ChunkParser", "ParserLimits", "ParserEvent", "ChunkStarted", "ChunkData", "ChunkEnded",
    "ChunkParseError", "HeaderParseError", "URIParseError",
]
