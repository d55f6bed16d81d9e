"""The relay's browser demo (``twistd msrp-relay --web-demo ENDPOINT``): a page in plain
JavaScript, no build step, that logs in to the relay over WSS, chats with a peer and sends
and receives files with progress. The relay serves it with ``config.json`` (which
WebSocket port to use) and CryptoJS's ``md5.js`` for the Digest hashes, from Debian's
``libjs-cryptojs`` (a library of the field, not a hash of our own)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data, File

from msrplib._uri import URI

__all__ = ["demo_site", "MD5_JS"]

#: Where Debian's libjs-cryptojs keeps CryptoJS's MD5.
MD5_JS = "/usr/share/javascript/cryptojs/rollups/md5.js"
_PAGES = os.path.join(os.path.dirname(__file__), "webdemo")


def demo_site(websocket: URI, host: Optional[str] = None, md5_js: str = MD5_JS) -> Site:
    """The demo's site, for the relay's ``wss`` (or ``ws``) listener at ``websocket``;
    ``host`` is the name the browser reaches it by (default: the URI's). ``ValueError``
    when ``md5_js`` is missing."""
    if not os.path.isfile(md5_js):
        raise ValueError("the web demo needs CryptoJS's md5.js at %s (apt-get install "
                         "libjs-cryptojs)" % md5_js)
    secure = websocket.use_tls
    config = {"websocket": "%s://%s:%d/" % ("wss" if secure else "ws",
                                            host or websocket.host, websocket.effective_port),
              "relay": str(websocket)}
    root = Resource()
    children: Dict[bytes, Any] = {
        b"": File(os.path.join(_PAGES, "index.html")),
        b"msrp-demo.js": File(os.path.join(_PAGES, "msrp-demo.js")),
        b"md5.js": File(md5_js),
        b"config.json": Data(json.dumps(config).encode("utf-8"), "application/json"),
    }
    for name, child in children.items():
        root.putChild(name, child)
    return Site(root)
