"""The README's main job: the plugin-based demo, run as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

from twisted.trial import unittest

ROOT = Path(__file__).resolve().parent.parent


class DemoTests(unittest.TestCase):
    def test_demo_runs_end_to_end(self):
        environment = dict(os.environ, PYTHONPATH=str(ROOT))
        result = subprocess.run([sys.executable, "-m", "msrplib.demo", "--size", "300000"],
                                capture_output=True, text=True, timeout=120, cwd=str(ROOT),
                                env=environment)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("bob   received: Hey Bob, are you there?", result.stdout)
        self.assertIn("alice received: Yes, send it!", result.stdout)
        self.assertIn("(300000 bytes), sha-256 matches", result.stdout)
        self.assertTrue(result.stdout.rstrip().endswith("done"))
