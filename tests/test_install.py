"""What a contributor types, ``pip install -e .`` in pip's default editable mode, gives a
working ``twistd msrp`` and ``msrp``: installed into a throwaway virtualenv, run from
outside the checkout, with nothing of it on ``PYTHONPATH``."""

import os
import subprocess
import sys
from pathlib import Path

import pip
import twisted
from twisted.trial import unittest

ROOT = Path(__file__).resolve().parent.parent


def site_directory(module):
    """The site-packages directory a module was imported from."""
    return str(Path(module.__file__).resolve().parent.parent)


class EditableInstallTests(unittest.TestCase):
    def setUp(self):
        self.venv = Path(self.mktemp()).resolve()
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(self.venv)],
                       check=True)
        [site] = list(self.venv.glob("lib/python*/site-packages"))
        # The venv sees this interpreter's packages (Twisted, pip, ...) as plain path
        # entries: their .pth files, among them any editable msrplib already installed
        # there, are not run, so the only msrplib it can find is the one installed below.
        dependencies = sorted({site_directory(twisted), site_directory(pip)})
        (site / "dependencies.pth").write_text("\n".join(dependencies) + "\n")
        self.environment = {name: value for name, value in os.environ.items()
                            if name not in ("PYTHONPATH", "PYTHONHOME")}
        self.python = str(self.venv / "bin" / "python")

    def run_in_venv(self, *command):
        return subprocess.run(list(command), capture_output=True, text=True, timeout=300,
                              cwd=str(self.venv), env=self.environment)

    def test_editable_install_in_the_default_mode_finds_the_plugin(self):
        installed = self.run_in_venv(self.python, "-m", "pip", "install", "-q", "--no-deps",
                                     "--ignore-installed", "-e", str(ROOT))
        self.assertEqual(installed.returncode, 0, installed.stdout + installed.stderr)
        plugin = self.run_in_venv(
            self.python, "-c",
            "from twisted.plugins import msrplib_plugin; print(msrplib_plugin.__file__)")
        self.assertEqual(plugin.stdout.strip(),
                         str(ROOT / "twisted" / "plugins" / "msrplib_plugin.py"),
                         plugin.stderr)
        twistd = self.run_in_venv(self.python, "-c",
                                  "from twisted.scripts.twistd import run; run()",
                                  "msrp", "--help")
        self.assertEqual(twistd.returncode, 0, twistd.stdout + twistd.stderr)
        self.assertIn("--control-token-file", twistd.stdout)
        command_line = self.run_in_venv(str(self.venv / "bin" / "msrp"), "--help")
        self.assertEqual(command_line.returncode, 0, command_line.stderr)
        self.assertIn("listen", command_line.stdout)
