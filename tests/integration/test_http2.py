"""HTTP/2 with prior knowledge on the cleartext port (server.http2.h2c):
curl --http2-prior-knowledge and nghttp on the routes (plain and streamed,
413 and 431), and the defences against hand-built frame floods (a small
frame writer, no HTTP/2 library): rapid reset, CONTINUATION flood, PING,
SETTINGS and empty-DATA floods, a zero-window slow reader. Each abusive
connection gets GOAWAY(ENHANCE_YOUR_CALM) or a close, one `security`
log event, other clients keep being served and the RSS stays bounded."""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import unittest

from harness import HOST, HapaxTestCase
from test_providers import MODELS, llm, provider, user

CURL = shutil.which("curl")
NGHTTP = shutil.which("nghttp")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 2, 3, 4, 6, 7, 8, 9)
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
ENHANCE_YOUR_CALM = 11


def frame(ftype, flags, stream, payload=b""):
    """9-byte frame header + payload."""
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, stream & 0x7FFFFFFF) + payload


def hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman."""
    def s(b):
        assert len(b) < 127
        return bytes([len(b)]) + b
    return b"\x00" + s(name) + s(value)


def request_block(method=b"GET", path=b"/health", extra=()):
    block = (hpack_literal(b":method", method) + hpack_literal(b":scheme", b"http") +
             hpack_literal(b":path", path) + hpack_literal(b":authority", b"localhost"))
    for n, v in extra:
        block += hpack_literal(n, v)
    return block


class H2Raw:
    """A raw HTTP/2 client connection: sends frames, reads frames."""

    def __init__(self, port, settings=b""):
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.buf = b""
        self.closed = False
        self.send(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, data):
        """Sends; False when the server already closed (reset or EPIPE)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def frames(self, timeout=5.0, until=None):
        """Reads frames until `until(frame)` holds, EOF, or the timeout.
        Returns the list read (type, flags, stream, payload)."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while len(self.buf) >= 9:
                n = (self.buf[0] << 16) | (self.buf[1] << 8) | self.buf[2]
                if len(self.buf) < 9 + n:
                    break
                f = (self.buf[3], self.buf[4], struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF,
                     self.buf[9:9 + n])
                self.buf = self.buf[9 + n:]
                out.append(f)
                if until and until(f):
                    return out
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                got = self.sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                self.closed = True
                break
            if not got:
                self.closed = True
                break
            self.buf += got
        return out

    def close(self):
        self.sock.close()


def goaway_code(frames):
    for f in frames:
        if f[0] == GOAWAY:
            return struct.unpack(">I", f[3][4:8])[0]
    return None


def rapid_reset_frames(n):
    """n streams each opened and at once cancelled (RST_STREAM CANCEL)."""
    data = b""
    for i in range(n):
        sid = 1 + 2 * i
        data += frame(HEADERS, END_HEADERS | END_STREAM, sid, request_block())
        data += frame(RST_STREAM, 0, sid, struct.pack(">I", 8))  # CANCEL
    return data


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def curl(port, path, data=None, headers=(), extra=()):
    """(status, headers dict, body bytes, http version) over h2c."""
    cmd = [CURL, "-s", "--http2-prior-knowledge", "-D", "-", "-o", "-", "--max-time", "20"]
    for h in headers:
        cmd += ["-H", h]
    if data is not None:
        cmd += ["--data-binary", "@-"]
    cmd += list(extra) + ["http://%s:%d%s" % (HOST, port, path)]
    p = subprocess.run(cmd, input=data, capture_output=True, timeout=30)
    raw = p.stdout
    head, _, body = raw.partition(b"\r\n\r\n")
    interim = []
    while head.startswith(b"HTTP/2 1"):  # 1xx interim answers come first
        interim.append(head)
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return None, {}, raw, None
    version, status = lines[0].split()[0:2]
    hdrs = {"_interim": len(interim)}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(status), hdrs, body, version


@unittest.skipUnless(CURL and NGHTTP, "curl and nghttp (nghttp2-client) needed")
class Http2RoutesTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.mock = self.start_mock()
        cfg = llm(provider("openai", self.mock))
        cfg["server"] = {"max_body_bytes": "4KB", "max_header_bytes": "8KB", "http2": {"h2c": True}}
        self.srv = self.start_server(cfg)

    def test_health_models_over_curl_h2(self):
        for path in ("/health", "/v1/models"):
            status, hdrs, body, version = curl(self.srv.port, path)
            self.assertEqual(version, "HTTP/2", (path, body[:200]))
            self.assertEqual(status, 200, (path, body[:200]))
            json.loads(body)
            self.assertNotIn("connection", hdrs)
            self.assertNotIn("transfer-encoding", hdrs)

    def test_chat_plain_and_streamed(self):
        req = {"model": MODELS["openai"], "messages": [user("hi")]}
        status, _, body, version = curl(self.srv.port, "/v1/chat/completions", json.dumps(req).encode(),
                                        ["content-type: application/json"])
        self.assertEqual((version, status), ("HTTP/2", 200), body[:300])
        self.assertIn("choices", json.loads(body))
        req["stream"] = True
        status, hdrs, body, _ = curl(self.srv.port, "/v1/chat/completions", json.dumps(req).encode(),
                                     ["content-type: application/json"])
        self.assertEqual(status, 200, body[:300])
        self.assertIn("text/event-stream", hdrs.get("content-type", ""))
        self.assertTrue(body.rstrip().endswith(b"data: [DONE]"), body[-200:])
        self.assertGreater(body.count(b"data: "), 3)

    def test_anthropic_messages(self):
        req = {"model": MODELS["openai"], "max_tokens": 32, "messages": [user("hi")]}
        status, _, body, version = curl(self.srv.port, "/v1/messages", json.dumps(req).encode(),
                                        ["content-type: application/json", "anthropic-version: 2023-06-01"])
        self.assertEqual((version, status), ("HTTP/2", 200), body[:300])
        self.assertEqual(json.loads(body).get("type"), "message")

    def test_413_and_431(self):
        status, _, body, _ = curl(self.srv.port, "/v1/chat/completions", b"x" * 10000,
                                  ["content-type: application/json"])
        self.assertEqual(status, 413, body[:300])
        self.assertEqual(json.loads(body)["error"]["code"], "body_too_large")
        status, _, body, _ = curl(self.srv.port, "/health", headers=["x-big: " + "b" * 9000])
        self.assertEqual(status, 431, body[:300])
        self.assertEqual(json.loads(body)["error"]["code"], "headers_too_large")

    def test_nghttp_routes(self):
        p = subprocess.run([NGHTTP, "-v", "http://%s:%d/health" % (HOST, self.srv.port)],
                           capture_output=True, timeout=30)
        out = p.stdout.decode()
        self.assertIn(":status: 200", out)
        path = os.path.join(self.workdir, "req.json")
        with open(path, "w") as f:
            json.dump({"model": MODELS["openai"], "stream": True, "messages": [user("hi")]}, f)
        p = subprocess.run([NGHTTP, "-v", "-d", path, "-H", "content-type: application/json",
                            "http://%s:%d/v1/chat/completions" % (HOST, self.srv.port)],
                           capture_output=True, timeout=30)
        out = p.stdout.decode()
        self.assertIn(":status: 200", out)
        self.assertIn("data: [DONE]", out)
        with open(path, "wb") as f:
            f.write(b"y" * 9000)
        p = subprocess.run([NGHTTP, "-v", "-d", path,
                            "http://%s:%d/v1/chat/completions" % (HOST, self.srv.port)],
                           capture_output=True, timeout=30)
        self.assertIn(":status: 413", p.stdout.decode())

    def test_h1_still_served_and_h2c_off_refuses_preface(self):
        r = self.srv.get("/health")
        self.assertEqual(r.status, 200)
        off = self.start_server({"server": {"http2": {"h2c": False}}}, name="off")
        status, _, _, _ = curl(off.port, "/health")
        self.assertNotEqual(status, 200)

    def streaming_chat(self, name, chunks, delay_ms):
        """A server (h2c) on a mock streaming `chunks` chunks `delay_ms` apart,
        and an h2c connection that sent a streamed chat on stream 1."""
        mock = self.start_mock(name=name + "mock", args=["--chunks", str(chunks), "--chunk-delay-ms", str(delay_ms)])
        srv = self.start_server(dict(llm(provider("openai", mock)), server={"http2": {"h2c": True}}), name=name)
        c = H2Raw(srv.port)
        body = json.dumps({"model": MODELS["openai"], "stream": True, "messages": [user("hi")]}).encode()
        c.send(frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/v1/chat/completions",
                                                              [(b"content-type", b"application/json")])) +
               frame(DATA, END_STREAM, 1, body))
        return srv, c

    def test_shutdown_lets_open_stream_finish(self):
        srv, c = self.streaming_chat("drain", 10, 100)
        got = c.frames(timeout=5, until=lambda f: f[0] == DATA and f[2] == 1)
        srv.signal(signal.SIGTERM)
        got += c.frames(timeout=10, until=lambda f: f[2] == 1 and f[1] & END_STREAM)
        got += c.frames(timeout=3)
        self.assertEqual(goaway_code(got), 0, "no GOAWAY(NO_ERROR) at shutdown")
        data = b"".join(f[3] for f in got if f[0] == DATA and f[2] == 1)
        self.assertTrue(data.rstrip().endswith(b"data: [DONE]"), data[-200:])
        self.assertTrue(c.closed)
        c.close()
        self.assertEqual(srv.wait_exit(10), 0)

    def test_slow_request_body_gets_408(self):
        srv = self.start_server({"server": {"read_timeout": "1s", "http2": {"h2c": True}}}, name="rt")
        c = H2Raw(srv.port)
        c.send(frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/v1/chat/completions")) +
               frame(DATA, 0, 1, b"{"))
        got = c.frames(timeout=10, until=lambda f: f[2] == 1 and f[0] == DATA and f[1] & END_STREAM)
        self.assertTrue(any(f[0] == HEADERS and f[2] == 1 for f in got), got)
        rec = srv.wait_log(lambda r: r.get("msg") == "request" and r.get("status") == 408)
        self.assertIsNotNone(rec, "no 408 in the access log")
        c.close()

    def test_preface_in_pieces_and_h1_sharing_its_first_letter(self):
        # The preface split into single bytes still reaches HTTP/2.
        c = socket.create_connection((HOST, self.srv.port), timeout=5)
        for b in PREFACE:
            c.sendall(bytes([b]))
            time.sleep(0.002)
        c.sendall(frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block()))
        raw = H2Raw.__new__(H2Raw)
        raw.sock, raw.buf, raw.closed = c, b"", False
        got = raw.frames(until=lambda f: f[2] == 1 and f[1] & END_STREAM)
        self.assertTrue(any(f[0] == DATA and f[2] == 1 and b'"status"' in f[3] for f in got), got[-3:])
        c.close()
        # An HTTP/1.1 request whose first byte is the preface's ("P") stays HTTP/1.1.
        h1 = self.srv.conn()
        h1.send(b"P")
        time.sleep(0.05)
        h1.send(b"OST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\n\r\n{}")
        r = h1.read_response()
        self.assertEqual(r.status, 400, r)  # an empty chat body: the gateway's answer, over HTTP/1.1
        h1.close()

    def test_http2_disabled_turns_h2c_off(self):
        srv = self.start_server({"server": {"http2": {"enabled": False, "h2c": True}}}, name="disabled")
        status, _, _, _ = curl(srv.port, "/health")
        self.assertNotEqual(status, 200)

    def test_early_answer_frees_the_stream(self):
        # 413 from the head; the client never ends its side: after
        # read_timeout the server resets the stream with NO_ERROR and a new
        # stream is served although max_concurrent_streams is 1.
        srv = self.start_server({"server": {"read_timeout": "1s", "max_body_bytes": "4KB",
                                            "http2": {"h2c": True, "max_concurrent_streams": 1}}},
                                name="early")
        c = H2Raw(srv.port)
        c.send(frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/v1/chat/completions",
                                                              [(b"content-length", b"999999")])))
        got = c.frames(timeout=10, until=lambda f: f[0] == RST_STREAM and f[2] == 1)
        rst = [f for f in got if f[0] == RST_STREAM and f[2] == 1]
        self.assertTrue(rst, got)
        self.assertEqual(struct.unpack(">I", rst[0][3])[0], 0)  # NO_ERROR
        self.assertIsNotNone(srv.wait_log(lambda r: r.get("status") == 413))
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, request_block()))
        got = c.frames(timeout=5, until=lambda f: f[2] == 3 and f[1] & END_STREAM)
        self.assertTrue(any(f[0] == DATA and f[2] == 3 and b'"status"' in f[3] for f in got), got[-3:])
        c.close()

    def test_client_reset_aborts_the_relay(self):
        srv, c = self.streaming_chat("rst", 50, 50)
        c.frames(timeout=5, until=lambda f: f[0] == DATA and f[2] == 1)
        c.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))  # CANCEL
        rec = srv.wait_log(lambda r: r.get("msg") == "request" and r.get("path") == "/v1/chat/completions")
        self.assertIsNotNone(rec)
        self.assertTrue(rec.get("aborted"), rec)
        # the connection goes on serving
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, request_block()))
        got = c.frames(timeout=5, until=lambda f: f[2] == 3 and f[1] & END_STREAM)
        self.assertTrue(any(f[0] == DATA and f[2] == 3 for f in got), got[-3:])
        c.close()

    def test_idle_connection_gets_goaway(self):
        srv = self.start_server({"server": {"http2": {"h2c": True, "idle_timeout": "1s"}}}, name="idle")
        c = H2Raw(srv.port)
        got = c.frames(timeout=8, until=lambda f: f[0] == GOAWAY)
        self.assertEqual(goaway_code(got), 0)
        c.frames(timeout=5)
        self.assertTrue(c.closed)
        c.close()
        self.assertIn('hapax_http2_goaway_total{reason="idle"} 1', srv.get("/metrics").body.decode())

    def test_protocol_error_gets_goaway_not_a_security_event(self):
        c = H2Raw(self.srv.port)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\x7f"))  # HPACK index past the tables
        got = c.frames(timeout=5, until=lambda f: f[0] == GOAWAY)
        self.assertEqual(goaway_code(got), 9)  # COMPRESSION_ERROR, said before the close
        c.frames(timeout=5)
        self.assertTrue(c.closed)
        c.close()
        time.sleep(0.2)
        self.assertFalse([r for r in self.srv.logs()[0] if r.get("kind") == "http2_abuse"])

    def test_max_concurrent_streams(self):
        srv = self.start_server({"server": {"http2": {"h2c": True, "max_concurrent_streams": 2}}},
                                name="mcs")
        c = H2Raw(srv.port)
        got = c.frames(until=lambda f: f[0] == SETTINGS and not f[1] & ACK)
        settings = [f for f in got if f[0] == SETTINGS and not f[1] & ACK][0][3]
        vals = {struct.unpack(">H", settings[i:i + 2])[0]: struct.unpack(">I", settings[i + 2:i + 6])[0]
                for i in range(0, len(settings), 6)}
        self.assertEqual(vals.get(3), 2, vals)  # SETTINGS_MAX_CONCURRENT_STREAMS
        c.close()


@unittest.skipUnless(CURL, "curl needed")
class Http2FloodTest(HapaxTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.start_server({"server": {"http2": {
            "h2c": True, "max_resets_per_second": 50, "max_pings_per_second": 10,
            "max_settings_per_second": 10, "max_empty_data_per_second": 10,
            "max_continuations": 8, "slow_read_timeout": "1s"}}})
        self.pid = self.srv.proc.pid

    def abuse_events(self):
        return [r for r in self.srv.logs()[0]
                if r.get("event") == "security" and r.get("kind") == "http2_abuse"]

    def flood(self, data, reason, rounds=1):
        rss0 = rss_kb(self.pid)
        c = H2Raw(self.srv.port)
        for _ in range(rounds):
            if not c.send(data):
                break
        got = c.frames(timeout=10, until=lambda f: f[0] == GOAWAY)
        self.assertEqual(goaway_code(got), ENHANCE_YOUR_CALM, got[-3:])
        c.frames(timeout=5)  # the close follows the GOAWAY (after a short linger)
        self.assertTrue(c.closed, "connection not closed after the GOAWAY")
        c.close()
        ev = self.srv.wait_log(lambda r: r.get("kind") == "http2_abuse")
        self.assertIsNotNone(ev, "no security event")
        self.assertEqual(ev.get("reason"), reason)
        time.sleep(0.2)
        self.assertEqual(len(self.abuse_events()), 1, self.abuse_events())
        # another client on another connection is still served
        status, _, _, version = curl(self.srv.port, "/health")
        self.assertEqual((version, status), ("HTTP/2", 200))
        self.assertEqual(self.srv.get("/health").status, 200)
        self.assertLess(rss_kb(self.pid), rss0 + 64 * 1024, "RSS grew past 64 MB")
        m = self.srv.get("/metrics").body.decode()
        self.assertIn('hapax_http2_goaway_total{reason="%s"} 1' % reason, m)

    def test_rapid_reset(self):
        self.flood(rapid_reset_frames(400), "rapid_reset")

    def test_provoked_resets(self):
        # Malformed heads (an uppercase field name) make the server reset
        # each stream: resets it is provoked into count like the client's.
        data = b"".join(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i,
                              request_block(extra=[(b"X-Upper", b"1")])) for i in range(400))
        self.flood(data, "provoked_reset")

    def test_expect_100_continue(self):
        mock = self.start_mock(name="m100")
        srv = self.start_server(dict(llm(provider("openai", mock)), server={"http2": {"h2c": True}}),
                                name="e100")
        big = json.dumps({"model": MODELS["openai"], "messages": [user("x" * 2000)]}).encode()
        status, hdrs, body, version = curl(srv.port, "/v1/chat/completions", big,
                                            ["content-type: application/json", "expect: 100-continue"])
        self.assertEqual((version, status), ("HTTP/2", 200), body[:200])
        self.assertEqual(hdrs["_interim"], 1, "no 100 Continue")

    def test_nghttp2_own_limit_is_logged_once(self):
        # 40 entries in one SETTINGS frame: past nghttp2's 32, it answers
        # ENHANCE_YOUR_CALM itself; the event is logged all the same.
        self.flood(frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535) * 40), "nghttp2_limit")

    def test_continuation_flood(self):
        data = frame(HEADERS, 0, 1, request_block())
        for i in range(100):
            data += frame(CONTINUATION, 0, 1, hpack_literal(b"x-c", b"%d" % i))
        self.flood(data, "continuation_flood")

    def test_ping_flood(self):
        self.flood(b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(200)), "ping_flood")

    def test_settings_flood(self):
        self.flood(frame(SETTINGS, 0, 0) * 200, "settings_flood")

    def test_priority_flood(self):
        self.flood(b"".join(frame(PRIORITY, 0, 1 + 2 * i, struct.pack(">IB", 0, 15)) for i in range(500)),
                   "priority_flood")

    def test_window_update_flood(self):
        self.flood(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * 3000, "window_update_flood")

    def test_empty_data_flood(self):
        data = frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/v1/chat/completions"))
        data += frame(DATA, 0, 1) * 200
        self.flood(data, "empty_data_flood")

    def test_flood_then_bad_frame_size_in_one_read(self):
        # The flood is found inside nghttp2's input loop; a frame-size
        # error right behind it once made nghttp2 abort the process.
        for reason, data in (("ping_flood", b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(20))),
                             ("empty_data_flood", frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/x"))
                              + frame(DATA, 0, 1) * 20)):
            with self.subTest(reason=reason):
                c = H2Raw(self.srv.port)
                c.send(data + frame(SETTINGS, 0, 0, b"x" * 5))  # a length not a multiple of 6
                got = c.frames(timeout=10, until=lambda f: f[0] == GOAWAY)
                self.assertEqual(goaway_code(got), ENHANCE_YOUR_CALM, got[-3:])
                c.close()
                self.assertIsNone(self.srv.proc.poll(), "the server died")
                self.assertEqual(self.srv.get("/health").status, 200)

    def test_window_updates_answering_data_are_not_a_flood(self):
        # A reader with a small window that answers every DATA frame with
        # two WINDOW_UPDATEs (stream and connection), far past
        # max_window_updates_per_second, is a download, not a flood.
        mock = self.start_mock(name="bigmock", args=["--chunks", "8000"])
        srv = self.start_server(dict(llm(provider("openai", mock)), server={"http2": {
            "h2c": True, "max_window_updates_per_second": 20}}), name="wu")
        c = H2Raw(srv.port, settings=struct.pack(">HI", 4, 16384))
        body = json.dumps({"model": MODELS["openai"], "stream": True, "messages": [user("hi")]}).encode()
        c.send(frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/v1/chat/completions",
                                                              [(b"content-type", b"application/json")])) +
               frame(DATA, END_STREAM, 1, body))
        received, updates, done = 0, 0, False
        deadline = time.monotonic() + 20
        while not done and time.monotonic() < deadline:
            for f in c.frames(timeout=2, until=lambda f: f[0] == DATA):
                if f[0] == GOAWAY:
                    self.fail("GOAWAY during a download: %r" % (f,))
                if f[0] == DATA and f[2] == 1:
                    received += len(f[3])
                    done = bool(f[1] & END_STREAM)
                    if f[3]:
                        inc = struct.pack(">I", len(f[3]))
                        c.send(frame(WINDOW_UPDATE, 0, 1, inc) + frame(WINDOW_UPDATE, 0, 0, inc))
                        updates += 2
        self.assertTrue(done, "the answer did not complete (%d bytes)" % received)
        self.assertGreater(updates, 100)
        self.assertFalse([r for r in srv.logs()[0] if r.get("kind") == "http2_abuse"])
        c.close()

    def test_zero_window_reader_sending_pings_is_still_slow(self):
        # PINGs (answered) keep bytes flowing, but no answer byte moves.
        mock = self.start_mock(name="pingmock", args=["--chunks", "2000"])
        srv = self.start_server(dict(llm(provider("openai", mock)), server={"http2": {
            "h2c": True, "slow_read_timeout": "1s"}}), name="pingslow")
        c = H2Raw(srv.port, settings=struct.pack(">HI", 4, 0))
        body = json.dumps({"model": MODELS["openai"], "stream": True, "messages": [user("hi")]}).encode()
        c.send(frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/v1/chat/completions",
                                                              [(b"content-type", b"application/json")])) +
               frame(DATA, END_STREAM, 1, body))
        got = []
        deadline = time.monotonic() + 8
        while goaway_code(got) is None and time.monotonic() < deadline:
            c.send(frame(PING, 0, 0, b"\0" * 8))
            got += c.frames(timeout=0.3)
        self.assertEqual(goaway_code(got), ENHANCE_YOUR_CALM, got[-3:])
        ev = srv.wait_log(lambda r: r.get("kind") == "http2_abuse")
        self.assertEqual(ev and ev.get("reason"), "slow_read")
        c.close()

    def test_zero_window_slow_reader(self):
        mock = self.start_mock(args=["--chunks", "2000"])
        srv = self.start_server(dict(llm(provider("openai", mock)), server={"http2": {
            "h2c": True, "slow_read_timeout": "1s"}}), name="slow")
        self.srv, self.pid = srv, srv.proc.pid
        rss0 = rss_kb(self.pid)
        # INITIAL_WINDOW_SIZE 0: the answer may not send a byte of body.
        c = H2Raw(srv.port, settings=struct.pack(">HI", 4, 0))
        body = json.dumps({"model": MODELS["openai"], "stream": True, "messages": [user("hi")]}).encode()
        c.send(frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/v1/chat/completions",
                                                              [(b"content-type", b"application/json")])) +
               frame(DATA, END_STREAM, 1, body))
        got = c.frames(timeout=15, until=lambda f: f[0] == GOAWAY)
        self.assertEqual(goaway_code(got), ENHANCE_YOUR_CALM, got[-3:])
        self.assertTrue(any(f[0] == HEADERS and f[2] == 1 for f in got), "no answer head")
        self.assertFalse(any(f[0] == DATA and f[2] == 1 and f[3] for f in got), "body past a zero window")
        c.frames(timeout=3)
        self.assertTrue(c.closed, "connection not closed after the GOAWAY")
        c.close()
        ev = srv.wait_log(lambda r: r.get("kind") == "http2_abuse")
        self.assertEqual(ev and ev.get("reason"), "slow_read")
        status, _, _, _ = curl(srv.port, "/health")
        self.assertEqual(status, 200)
        self.assertLess(rss_kb(self.pid), rss0 + 64 * 1024)


if __name__ == "__main__":
    unittest.main()
