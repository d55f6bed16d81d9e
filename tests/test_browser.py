"""The relay's browser demo (``--web-demo``) in a real browser: headless chromium through
selenium opens the page, logs in to the relay over WSS, chats with a Python endpoint on
TCP, receives a file from it and sends one back. Skipped, saying what to install, without
chromium, its driver, selenium or CryptoJS (tests/install.sh installs them where apt-get
works)."""

import hashlib
import os
import shutil
import time
import urllib.parse

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from msrplib.connect import AcceptorRelay
from msrplib.protocol import format_path, parse_path
from msrplib.relayserver import MSRPRelay
from msrplib.relayserver.webdemo import MD5_JS, demo_site
from msrplib.session import MSRPSession
from msrplib.testing import CollectingReceiver
from msrplib.tls import TLSIdentity
from tests.test_relay_server import HA1, REALM, SESSION_SETTINGS, RelayHarness

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL = ("apt-get install chromium chromium-driver libjs-cryptojs; pip install selenium "
           "(tests/install.sh does both)")


def missing():
    """What the browser test lacks, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium"
    for path in (CHROMIUM, DRIVER, MD5_JS):
        if not os.path.exists(path):
            return path
    return None


class BrowserDemoTests(RelayHarness, unittest.TestCase):
    timeout = 120

    def setUp(self):
        lacking = missing()
        if lacking is not None:
            raise unittest.SkipTest("no %s for the browser test: %s" % (lacking, INSTALL))
        self.addCleanup(task.deferLater, reactor, 1.1, lambda: None)  # autobahn's timers
        self.relay = MSRPRelay(REALM, HA1)
        self.tcp = self.relay.listen(0)
        self.wss = self.relay.listen_websocket(
            0, identity=TLSIdentity.generate(hosts=("127.0.0.1",)))
        self.addCleanup(self.relay.stop)
        self.web = reactor.listenTCP(0, demo_site(self.wss), interface="127.0.0.1")
        self.addCleanup(self.web.stopListening)
        return deferToThread(self.start_browser)

    def start_browser(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        options = Options()
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--ignore-certificate-errors"):  # the relay's certificate is ours
            options.add_argument(argument)
        options.binary_location = CHROMIUM
        self.browser = webdriver.Chrome(options=options, service=Service(DRIVER))
        self.addCleanup(deferToThread, self.browser.quit)

    def text_of(self, element_id):
        return deferToThread(lambda: self.browser.find_element("id", element_id).text)

    @inlineCallbacks
    def until(self, check, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            value = yield deferToThread(check)
            if value:
                return value
            if time.monotonic() > deadline:
                log = yield self.text_of("log")
                status = yield self.text_of("status")
                self.fail("the page did not get there: status %r, log %r" % (status, log))
            yield task.deferLater(reactor, 0.1, lambda: None)

    def log_line(self, prefix):
        def check():
            for item in self.browser.find_elements("css selector", "#log li"):
                if item.text.startswith(prefix):
                    return item.text
            return None
        return check

    @inlineCallbacks
    def test_the_page_chats_and_sends_files_both_ways(self):
        heard = CollectingReceiver()
        bob = self.endpoint(AcceptorRelay, self.settings("bob", self.tcp))
        bob_path = yield bob.prepare()
        query = urllib.parse.urlencode({"user": "alice", "password": "alice-secret",
                                        "peer": format_path(bob_path)})
        yield deferToThread(self.browser.get, "http://127.0.0.1:%d/?%s"
                            % (self.web.getHost().port, query))
        yield deferToThread(lambda: self.browser.find_element("id", "connect").click())
        page_path = yield self.until(
            lambda: self.browser.find_element("id", "local-path").text)
        link = yield bob.complete(parse_path(page_path))
        session = MSRPSession(link, settings=SESSION_SETTINGS, receiver=heard)
        self.addCleanup(session.abort)
        yield self.until(lambda: self.browser.find_element("id", "status").text == "bound")

        # Bob to the page, confirmed by the page's success REPORT.
        yield session.send_message(b"hello, browser", "text/plain")
        yield self.until(self.log_line("peer: hello, browser"))

        # The page to Bob.
        def type_and_send():
            self.browser.find_element("id", "text").send_keys("hello, Bob")
            self.browser.find_element("id", "send").click()
        yield deferToThread(type_and_send)
        yield self.until(lambda: heard.received)
        self.assertEqual(heard.received[0].data, b"hello, Bob")

        # A file from Bob: the page shows its size and hash.
        payload = os.urandom(1024 * 1024 + 17)
        yield session.send_message(payload, "application/octet-stream",
                                   headers={"Content-Disposition":
                                            'attachment; filename="from-bob.bin"'})
        line = yield self.until(self.log_line("file from-bob.bin"))
        self.assertIn("%d bytes, sha256 %s" % (len(payload),
                                               hashlib.sha256(payload).hexdigest()), line)

        # A file from the page, with its progress bar.
        upload = os.path.abspath(self.mktemp())
        with open(upload, "wb") as out:
            out.write(os.urandom(300 * 1024))

        def choose_and_send():
            self.browser.find_element("id", "file").send_keys(upload)
            self.browser.find_element("id", "send-file").click()
        yield deferToThread(choose_and_send)
        yield self.until(lambda: len(heard.received) == 2)
        with open(upload, "rb") as source:
            self.assertEqual(heard.received[1].data, source.read())
        self.assertEqual(heard.received[1].file_name, os.path.basename(upload))
        progress = yield deferToThread(lambda: self.browser.find_element(
            "id", "progress").get_attribute("value"))
        self.assertEqual(float(progress), 1.0)
