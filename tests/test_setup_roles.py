"""Direct sessions with every ``a=setup`` combination of an offer and its answer (RFC 6135,
RFC 4145), ``actpass`` included: the offerer listens from ``prepare()`` on and takes the
role the answer leaves it in ``complete()``."""

import socket

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial import unittest

from msrplib.connect import AcceptorDirect, ConnectorDirect
from msrplib.sdp import answer_setup, local_role
from msrplib.session import MSRPSession, SessionSettings
from msrplib.testing import CollectingReceiver
from tests.helpers import close, local_uri

SETTINGS = SessionSettings(keepalive_interval=0)


def refuses(port):
    """Whether nothing listens on ``port`` of 127.0.0.1 any more."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


class SetupRoleTests(unittest.TestCase):
    @inlineCallbacks
    def offer_and_answer(self, offer_setup, answer=None, tls=False):
        """Offer with ``offer_setup`` (``None``: no attribute), answer with ``answer`` (by
        default what RFC 6135 says to answer), bind, and chat both ways."""
        offerer = ConnectorDirect(setup=offer_setup or "active")
        self.addCleanup(offerer.cleanup)
        offer_path = yield offerer.prepare(local_uri(tls))
        answered = answer or answer_setup(offer_setup)
        answerer = AcceptorDirect(setup=answered)
        self.addCleanup(answerer.cleanup)
        answer_path = yield answerer.prepare(local_uri(tls))
        role = local_role(offer_setup, answered, offerer=True)
        fingerprints = ({"remote_fingerprint": path[-1].credentials.fingerprint()}
                        if tls else {} for path in (answer_path, offer_path))
        links = yield gatherResults([
            offerer.complete(answer_path, setup=role, **next(fingerprints)),
            answerer.complete(offer_path, **next(fingerprints))], consumeErrors=True)
        for link in links:
            self.addCleanup(close, link)
        heard = CollectingReceiver(), CollectingReceiver()
        sessions = [MSRPSession(link, settings=SETTINGS, receiver=receiver)
                    for link, receiver in zip(links, heard)]
        yield sessions[0].send_message(b"from the offerer", "text/plain")
        yield sessions[1].send_message(b"from the answerer", "text/plain")
        self.assertEqual([m.data for m in heard[1].received], [b"from the offerer"])
        self.assertEqual([m.data for m in heard[0].received], [b"from the answerer"])
        return role, offer_path, links

    @inlineCallbacks
    def test_actpass_answered_active_listens(self):
        role, offer_path, links = yield self.offer_and_answer("actpass", "active")
        self.assertEqual(role, "passive")
        # The answerer connected to the port in the offer.
        self.assertEqual(links[0].protocol.transport.getHost().port, offer_path[0].port)

    @inlineCallbacks
    def test_actpass_answered_passive_connects(self):
        role, offer_path, links = yield self.offer_and_answer("actpass", "passive")
        self.assertEqual(role, "active")
        self.assertNotEqual(links[0].protocol.transport.getHost().port, offer_path[0].port)
        self.assertTrue(refuses(offer_path[0].port), "the offered port is still open")

    @inlineCallbacks
    def test_actpass_over_tls_both_ways(self):
        for answer in ("active", "passive"):
            role, _, links = yield self.offer_and_answer("actpass", answer, tls=True)
            self.assertIsNotNone(links[0].protocol.transport.getPeerCertificate())

    @inlineCallbacks
    def test_active_offer(self):
        role, _, _ = yield self.offer_and_answer("active")
        self.assertEqual(role, "active")

    @inlineCallbacks
    def test_passive_offer(self):
        role, _, _ = yield self.offer_and_answer("passive")
        self.assertEqual(role, "passive")

    @inlineCallbacks
    def test_no_setup_attribute_is_actpass(self):
        role, _, _ = yield self.offer_and_answer(None)
        self.assertEqual(role, "active")

    @inlineCallbacks
    def test_an_actpass_endpoint_needs_its_role(self):
        endpoint = ConnectorDirect(setup="actpass")
        self.addCleanup(endpoint.cleanup)
        path = yield endpoint.prepare(local_uri(False))
        for role in (None, "actpass", "holdconn"):
            error = self.assertRaises(ValueError, endpoint.complete, path, setup=role)
            self.assertIn("actpass endpoint needs", str(error))
        fixed = AcceptorDirect()
        self.addCleanup(fixed.cleanup)
        yield fixed.prepare(local_uri(False))
        self.assertRaises(ValueError, fixed.complete, path, setup="active")
        self.assertRaises(ValueError, local_role, "actpass", "actpass", True)
