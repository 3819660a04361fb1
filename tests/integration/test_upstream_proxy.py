"""hapax honours the standard proxy variables for its upstream calls
(http_proxy / no_proxy), as libcurl does: a tiny forward proxy in the test
sees the provider request in absolute form and relays it to the mock."""

import json
import socket
import threading
import urllib.parse

from harness import HapaxTestCase
from test_providers import expected_text, provider, user

PROXY_ENV_NAMES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                   "no_proxy", "NO_PROXY")


class ForwardProxy:
    """Accepts absolute-form HTTP/1.1 requests, records their target, and
    relays each (one request per connection, Connection: close) upstream."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.targets = []
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def handle(self, c):
        with c:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            self.targets.append(target)
            headers = [l for l in lines[1:] if not l.lower().startswith(("proxy-", "connection:"))]
            length = 0
            for l in headers:
                if l.lower().startswith("content-length:"):
                    length = int(l.split(":", 1)[1])
            while len(rest) < length:
                rest += c.recv(65536)
            u = urllib.parse.urlsplit(target)
            path = u.path + ("?" + u.query if u.query else "")
            up = socket.create_connection((u.hostname, u.port))
            with up:
                req = "%s %s %s\r\n%s\r\nConnection: close\r\n\r\n" % (method, path, version, "\r\n".join(headers))
                up.sendall(req.encode("latin-1") + rest)
                while True:
                    chunk = up.recv(65536)
                    if not chunk:
                        break
                    c.sendall(chunk)

    def close(self):
        self.stop = True
        self.sock.close()


class UpstreamProxyTest(HapaxTestCase):
    def setUp(self):
        super().setUp()
        self.proxy = ForwardProxy()
        self.addCleanup(self.proxy.close)

    def start(self, env):
        mock = self.start_mock()
        p = provider("openai", mock)
        p.update({"retry": {"max_retries": 0}, "health_check": {"enabled": False}})
        base = {k: None for k in PROXY_ENV_NAMES}
        base.update(env)
        srv = self.start_server({"llm": p}, env=base)
        return mock, srv

    def chat(self, srv):
        r = srv.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                        body=json.dumps({"messages": [user("via proxy")]}), timeout=15)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], expected_text("openai", "via proxy"))

    def test_http_proxy_carries_the_provider_request(self):
        mock, srv = self.start({"http_proxy": "http://127.0.0.1:%d" % self.proxy.port})
        self.chat(srv)
        self.assertEqual(len(self.proxy.targets), 1, self.proxy.targets)
        self.assertEqual(self.proxy.targets[0], "%s/chat/completions" % mock.endpoint("openai"))

    def test_no_proxy_bypasses_it(self):
        mock, srv = self.start({"http_proxy": "http://127.0.0.1:%d" % self.proxy.port,
                                "no_proxy": "127.0.0.1"})
        self.chat(srv)
        self.assertEqual(self.proxy.targets, [])
