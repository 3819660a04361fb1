"""Hostile upstreams (issue 9): what a provider sends must not leak the
gateway's secrets, break the client's stream framing, hold a stream forever,
exhaust memory, or let a client escape its tokens-per-minute limit.

Every test starts its own mock provider (tests/mock, fault modes stall,
huge-stall, echo-key, echo-key-stream, multiline-sse) and its own hapax.
"""

import json
import threading
import time

from harness import HapaxTestCase, RawConn, secret
from test_providers import sse_events

PATH = "/v1/chat/completions"
REQ_TIMEOUT = 20.0

OPENAI_KEY = secret("sk-hostile-openai-0123456789abcdef")
ANTH_KEY = secret("sk-ant-hostile-0123456789abcdef")
CLIENT_KEY = secret("hx-client-key-hostile-42")


def chat_body(said="hello there", stream=False, **extra):
    b = {"model": "gpt-test", "messages": [{"role": "user", "content": said}]}
    if stream:
        b["stream"] = True
    b.update(extra)
    return json.dumps(b)


class HostileUpstreamCase(HapaxTestCase):

    def anthropic_stream_text(self, srv):
        """(response, streamed text) of a streamed /v1/messages request."""
        body = json.dumps({"model": "gpt-test", "max_tokens": 50, "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]})
        r = self.post(srv, body, path="/v1/messages")
        self.assertEqual(r.status, 200, r)
        text = "".join(json.loads(d)["delta"].get("text", "") for n, d in sse_events(r.body)
                       if n == "content_block_delta")
        return r, text

    def pair(self, kind="openai", fault=None, llm_extra=None, extra=None, mock_args=None):
        mock = self.start_mock(args=mock_args)
        base = mock.url + ("/fault/%s" % fault if fault else "")
        if kind == "openai":
            prov = {"provider": "openai", "model": "gpt-test", "api_key": OPENAI_KEY, "endpoint": base + "/v1"}
        else:
            prov = {"provider": "anthropic", "model": "gpt-test", "api_key": ANTH_KEY, "endpoint": base + "/v1"}
        section = dict(prov)
        section.update({"connect_timeout": "2s", "first_byte_timeout": "5s", "request_timeout": "30s",
                        "retry": {"max_retries": 0}, "health_check": {"enabled": False}})
        section.update(llm_extra or {})
        cfg = {"llm": section}
        cfg.update(extra or {})
        return mock, self.start_server(cfg)

    def post(self, srv, body, path=PATH, headers=None, timeout=REQ_TIMEOUT):
        h = {"Content-Type": "application/json"}
        if path == "/v1/messages":
            h["anthropic-version"] = "2023-06-01"
        h.update(headers or {})
        return srv.request("POST", path, headers=h, body=body, timeout=timeout)

    def assertNoSecrets(self, data, srv=None):
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        for s in (OPENAI_KEY, ANTH_KEY, CLIENT_KEY):
            self.assertNotIn(s, text)
            # nor a recognisable half of one
            self.assertNotIn(s[len(s) // 2:], text)
        if srv is not None:
            log = srv.stderr_text()
            for s in (OPENAI_KEY, ANTH_KEY, CLIENT_KEY):
                self.assertNotIn(s, log)


class TestSecretScrubbing(HostileUpstreamCase):

    def test_error_echoing_openai_key_is_redacted(self):
        mock, srv = self.pair("openai", fault="echo-key")
        r = self.post(srv, chat_body())
        self.assertEqual(r.status, 400, r)
        msg = r.json()["error"]["message"]
        self.assertIn("your key was Bearer [redacted]", msg)
        self.assertNoSecrets(r.body, srv)

    def test_error_echoing_anthropic_key_is_redacted(self):
        mock, srv = self.pair("anthropic", fault="echo-key")
        r = self.post(srv, chat_body())
        self.assertEqual(r.status, 400, r)
        self.assertIn("[redacted]", r.json()["error"]["message"])
        self.assertNoSecrets(r.body, srv)

    def test_client_key_in_upstream_error_is_redacted(self):
        # The upstream sees only the provider key; if the client's key got
        # there (say, in a prompt) and came back, it is still not relayed.
        mock, srv = self.pair("openai", fault="echo-key",
                              extra={"auth": {"enabled": True,
                                              "keys": [{"name": "c", "key": CLIENT_KEY}]}})
        r = self.post(srv, chat_body(said="my key is " + CLIENT_KEY),
                      headers={"Authorization": "Bearer " + CLIENT_KEY})
        self.assertEqual(r.status, 400, r)
        self.assertNoSecrets(r.body, srv)
        last = mock.last()
        self.assertIn(CLIENT_KEY, json.dumps(last["body"]))  # it did reach the upstream

    def test_stream_echoing_key_split_across_reads_is_redacted(self):
        # The mock writes the first half of the key, waits 100 ms, then the
        # rest: hapax reads the key in two pieces.
        mock, srv = self.pair("openai", fault="echo-key-stream")
        r = self.post(srv, chat_body(stream=True))
        self.assertEqual(r.status, 200, r)
        events = sse_events(r.body)
        self.assertEqual(events[-1][1], "[DONE]", r.body)
        first = json.loads(events[0][1])
        self.assertEqual(first["choices"][0]["delta"]["content"], "your key was Bearer [redacted]")
        self.assertNoSecrets(r.body, srv)

    def test_passthrough_body_echoing_key_is_redacted(self):
        # Not streamed: the OpenAI body is relayed as it is to an OpenAI
        # client, except the key (again split across two reads).
        mock, srv = self.pair("openai", fault="echo-key-stream")
        r = self.post(srv, chat_body())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["choices"][0]["message"]["content"], "your key was Bearer [redacted]")
        self.assertNoSecrets(r.body, srv)

    def test_stream_echoing_key_translated_is_redacted(self):
        # Same stream, rendered for an Anthropic client (the canonical path).
        mock, srv = self.pair("openai", fault="echo-key-stream")
        r, text = self.anthropic_stream_text(srv)
        self.assertEqual(text, "your key was Bearer [redacted]")
        self.assertNoSecrets(r.body, srv)


class TestMultilineSSE(HostileUpstreamCase):

    def test_multiline_data_reaches_client_as_valid_events(self):
        mock, srv = self.pair("openai", fault="multiline-sse")
        r = self.post(srv, chat_body(stream=True))
        self.assertEqual(r.status, 200, r)
        events = sse_events(r.body)
        self.assertEqual(events[-1][1], "[DONE]", r.body)
        text = ""
        for _, data in events[:-1]:
            doc = json.loads(data)  # every event is whole JSON
            for ch in doc["choices"]:
                text += ch["delta"].get("content") or ""
        self.assertEqual(text, "multi line")
        # and a client that reads one data line per event sees the same
        for line in r.body.decode().split("\n"):
            if line.startswith("data: ") and line != "data: [DONE]":
                json.loads(line[6:])

    def test_multiline_data_translated(self):
        mock, srv = self.pair("openai", fault="multiline-sse")
        r, text = self.anthropic_stream_text(srv)
        self.assertEqual(text, "multi line")


class TestStreamIdleTimeout(HostileUpstreamCase):

    def test_hung_stream_ends_with_error_event(self):
        # Headers and two chunks, then silence: the client gets an error
        # event after stream_idle_timeout, long before request_timeout, and
        # the request is not sent again.
        mock, srv = self.pair("openai", fault="stall", llm_extra={"stream_idle_timeout": "1s"})
        t0 = time.monotonic()
        r = self.post(srv, chat_body(stream=True), timeout=15.0)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertLess(took, 12.0, "the stream was held %.1fs" % took)
        events = sse_events(r.body)
        contents = [e for e in events if '"content"' in e[1]]
        self.assertGreaterEqual(len(contents), 1, r.body)
        err = json.loads(events[-1][1])
        self.assertIn("error", err, r.body)
        self.assertIn("idle_timeout", err["error"]["message"])
        self.assertEqual(mock.stats()["requests"], 1)

    def test_hung_answer_before_client_bytes_is_504(self):
        # Retries are on (timeouts are retryable by default), but an upstream
        # that accepted the request and went quiet is not asked again.
        mock, srv = self.pair("openai", fault="stall",
                              llm_extra={"stream_idle_timeout": "1s",
                                         "retry": {"max_retries": 3, "initial_delay": "10ms"}})
        t0 = time.monotonic()
        r = self.post(srv, chat_body(), timeout=15.0)
        self.assertLess(time.monotonic() - t0, 12.0)
        self.assertEqual(r.status, 504, r)
        self.assertIn("idle_timeout", r.json()["error"]["message"])
        self.assertEqual(mock.stats()["requests"], 1)

    def test_slow_but_steady_stream_is_not_cut(self):
        # 6 chunks 400 ms apart: every gap is below the 1s idle timeout
        # although the whole stream takes longer than it.
        mock, srv = self.pair("openai", llm_extra={"stream_idle_timeout": "1s"},
                              mock_args=["--chunks", "6", "--chunk-delay-ms", "400"])
        r = self.post(srv, chat_body(stream=True), timeout=15.0)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sse_events(r.body)[-1][1], "[DONE]", r.body)


    def test_slow_client_is_not_an_idle_upstream(self):
        # 8 MiB streamed to a client that stops reading for 2.5 s: the
        # upstream transfer is paused meanwhile (backpressure), which must
        # not count as the upstream being idle.
        mock, srv = self.pair("openai", fault="huge", llm_extra={"stream_idle_timeout": "1s"})
        body = chat_body(stream=True)
        c = RawConn(srv.port, timeout=30.0, rcvbuf=16384)
        self._conns.append(c)
        c.send(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n%s" % (PATH, len(body), body)).encode())
        head = c.read_head()
        self.assertEqual(head.status, 200, head)
        c.read_until(b"lorem")
        time.sleep(2.5)
        c.read_until(b"data: [DONE]", timeout=30.0)
        self.assertNotIn(b'"error"', bytes(c.buf[-4096:]))


class TestBufferBudget(HostileUpstreamCase):

    def test_buffered_answers_share_one_budget(self):
        # Budget 6 MiB. Request A gets 4 MiB of a huge answer and stalls
        # (held); request B would need 4 MiB more: 503 at once, not growth.
        # Once A ends (idle timeout), its bytes are given back.
        mock, srv = self.pair("openai", fault="huge-stall",
                              llm_extra={"stream_idle_timeout": "3s", "upstream_buffer_budget": "6MB"})
        res = {}

        def run_a():
            res["a"] = self.post(srv, chat_body(), timeout=20.0)

        ta = threading.Thread(target=run_a)
        ta.start()
        st, ok = mock.wait_stats(lambda s: s["requests"] >= 1 and s["active"] >= 1)
        self.assertTrue(ok, st)
        time.sleep(1.0)  # let A's 4 MiB arrive
        t0 = time.monotonic()
        b = self.post(srv, chat_body(), timeout=20.0)
        self.assertEqual(b.status, 503, b)
        self.assertLess(time.monotonic() - t0, 2.5, "B waited instead of failing at once")
        self.assertIn("upstream_buffer_budget", b.json()["error"]["message"])
        self.assertEqual(b.header("Retry-After"), "5", b)
        ta.join(20.0)
        self.assertEqual(res["a"].status, 504, res["a"])
        # A's bytes were released: C is held again (504), not refused (503)
        c = self.post(srv, chat_body(), timeout=20.0)
        self.assertEqual(c.status, 504, c)


class TestTokensPerMinute(HostileUpstreamCase):

    def limited(self, tpm):
        return {"auth": {"enabled": True,
                         "keys": [{"name": "thrifty", "key": CLIENT_KEY,
                                   "rate_limit": {"tokens_per_minute": tpm}}]},
                "rate_limit": {"enabled": True, "requests_per_minute": 600, "burst": 100}}

    def test_client_leaving_mid_stream_is_charged(self):
        # 400 chunks 10 ms apart: the client reads the first 20 content
        # events and leaves long before the usage chunk.
        mock, srv = self.pair("openai", extra=self.limited(40),
                              mock_args=["--chunks", "400", "--chunk-delay-ms", "10"])
        body = chat_body(said="tell me a long story", stream=True, stream_options={"include_usage": True})
        c = RawConn(srv.port, timeout=10.0)
        c.send(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
                % (PATH, CLIENT_KEY, len(body), body)).encode())
        head = c.read_head()
        self.assertEqual(head.status, 200, head)
        c.read_until(b"lorem")
        for _ in range(20):
            c.read_until(b"\n\n")
        c.close()
        st, ok = mock.wait_stats(lambda s: s["active"] == 0, timeout=10.0)
        self.assertTrue(ok, st)
        rec = srv.wait_log(lambda x: x.get("msg") == "request" and x.get("status") == 200)
        self.assertIsNotNone(rec)
        r = self.post(srv, chat_body(), headers={"Authorization": "Bearer " + CLIENT_KEY})
        self.assertEqual(r.status, 429, r)
        self.assertIn("Token rate limit", r.json()["error"]["message"])

    def test_reported_usage_is_charged_once(self):
        # A full answer: 2 prompt + 8 completion tokens against 25 a minute.
        # Charged once (10, not the reservation plus the usage): two more
        # answers fit, the fourth is refused.
        mock, srv = self.pair("openai", extra=self.limited(25))
        auth = {"Authorization": "Bearer " + CLIENT_KEY}
        for i in range(3):
            r = self.post(srv, chat_body(), headers=dict(auth, **{"X-Request-ID": "tpm-%d" % i}))
            self.assertEqual(r.status, 200, (i, r))
            srv.wait_log(lambda x, i=i: x.get("msg") == "request" and x.get("request_id") == "tpm-%d" % i)
        r = self.post(srv, chat_body(), headers=auth)
        self.assertEqual(r.status, 429, r)
