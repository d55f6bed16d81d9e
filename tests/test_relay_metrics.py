"""The relay's counters: what it counts reaches prometheus-client's registry."""

from prometheus_client import generate_latest
from twisted.trial import unittest

from msrplib.relayserver.metrics import RelayMetrics


class ForwardedCountTests(unittest.TestCase):
    def test_forwarded_chunks_and_bytes_show_in_every_reading_once(self):
        metrics = RelayMetrics()
        metrics.forwarded("SEND", 100)
        metrics.forwarded("SEND", 20)
        metrics.forwarded("REPORT", 0)
        sample = metrics.registry.get_sample_value
        self.assertEqual(sample("msrp_relay_chunks_total", {"method": "SEND"}), 2.0)
        self.assertEqual(sample("msrp_relay_chunks_total", {"method": "REPORT"}), 1.0)
        self.assertEqual(sample("msrp_relay_body_bytes_total"), 120.0)
        # Read again: nothing counted twice; then more, added to what was there.
        self.assertEqual(sample("msrp_relay_body_bytes_total"), 120.0)
        metrics.forwarded("SEND", 5)
        text = generate_latest(metrics.registry).decode()
        self.assertIn('msrp_relay_chunks_total{method="SEND"} 3.0', text)
        self.assertIn("msrp_relay_body_bytes_total 125.0", text)
