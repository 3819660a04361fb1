"""Bad input never crashes the server: 200 random / mutated / hostile byte
strings (fixed seed), each on its own connection."""

import random
import threading

from harness import ConnectionClosed, HapaxTestCase, RawConn

SEED = 20261127
N_CASES = 200
PARALLEL = 8

TEMPLATES = [
    b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\nExpect: 100-continue\r\n"
    b"Content-Length: 3\r\n\r\nabc",
    b"GET /nope?x=1&y=%20 HTTP/1.0\r\n\r\n",
]

TOKENS = [b"\r\n", b"\n", b"\r", b":", b" ", b"\x00", b"%", b"%00", b"chunked", b"-1",
          b"99999999999999999999", b"\xff", b"\x80", b"\t", b"Content-Length: ",
          b"Transfer-Encoding: chunked\r\n", b"\r\n\r\n", b"HTTP/1.1", b"/", b"?", b"#",
          b"ffffffffffffffff", b"0\r\n\r\n", b"Expect: 100-continue\r\n"]

HOSTILE = [
    b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n",
    b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775807\r\n\r\nab",
    b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nabcde",
    b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcdefg",
    b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nx\r\n",
    b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nxx",
    b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",
    b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
    b"GET /health HTTP/1.1\nHost: x\n\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\n folded: continuation\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: \r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: " + b"r" * 5000 + b"\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\r\nX-Request-ID: b\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: \xff\xfe\x00\x01\r\n\r\n",
    b"GET /%00%ff/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://example.com/health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"GET /health HTTP/1.1\r\n\r\n",
    b"G" * 10000 + b" / HTTP/1.1\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\x00" * 64,
    b"\r\n\r\n\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" * 20,
    b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nExpect: 999-weird\r\n\r\n",
    b"GET /health HTTP/0.9\r\n\r\n",
    b"GET /health HTTP/1.1\x00\r\nHost: x\r\n\r\n",
    b"\x00" * 1000,
    b"\xff" * 3000,
]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos:pos] = bytes([rng.randrange(256)])
        elif op == 2 and data:
            end = min(len(data), pos + rng.randint(1, 20))
            del data[pos:end]
        elif op == 3:
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 4 and data:
            end = min(len(data), pos + rng.randint(1, 30))
            data[pos:pos] = data[pos:end] * rng.randint(1, 50)
        else:
            data = data[:pos]
    return bytes(data)


def make_cases():
    rng = random.Random(SEED)
    cases = list(HOSTILE)
    while len(cases) < 60:
        cases.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000))))
    while len(cases) < N_CASES:
        cases.append(mutate(rng, rng.choice(TEMPLATES)))
    # Half-close after sending for some cases, keep the write side open for others.
    return [(data, rng.random() < 0.5) for data in cases[:N_CASES]]


class FuzzTest(HapaxTestCase):

    def _one(self, port, data, half_close, results, idx):
        got = b""
        try:
            c = RawConn(port, timeout=3)
            try:
                c.try_send(data)
                if half_close:
                    c.shutdown_write()
                c.wait_closed(3)
                got = bytes(c.buf)
            finally:
                c.close()
        except OSError as e:
            results[idx] = ("connect", repr(e))
            return
        results[idx] = ("ok", got)

    def test_random_inputs_do_not_crash(self):
        srv = self.start_server({"server": {"read_timeout": "1s", "idle_timeout": "1s",
                                            "max_header_bytes": "16KB", "max_body_bytes": "16KB"}})
        cases = make_cases()
        self.assertEqual(len(cases), N_CASES)
        results = [None] * len(cases)
        for start in range(0, len(cases), PARALLEL):
            batch = range(start, min(start + PARALLEL, len(cases)))
            threads = [threading.Thread(target=self._one,
                                        args=(srv.port, cases[i][0], cases[i][1], results, i))
                       for i in batch]
            for t in threads:
                t.start()
            for t in threads:
                t.join(15)
            self.assertFalse(any(t.is_alive() for t in threads), "fuzz client hung")
            if not srv.alive():
                self.fail("hapax died (rc=%s) on one of fuzz cases %d..%d:\n%s\nstderr:\n%s"
                          % (srv.proc.poll(), batch[0], batch[-1],
                             "\n".join("  #%d half_close=%s %r" % (i, cases[i][1], cases[i][0][:300])
                                       for i in batch),
                             srv.stderr_text()[-3000:]))

        failures = [(i, r) for i, r in enumerate(results) if r is None or r[0] != "ok"]
        self.assertEqual(failures, [], "fuzz connections that could not be made")
        for i, (_, got) in enumerate(results):
            if got:
                self.assertRegex(got[:9], rb"^HTTP/1\.[01] ",
                                 "case #%d %r: reply is not HTTP: %r" % (i, cases[i][0][:120], got[:120]))

        # Still serving, on a fresh and on a keep-alive connection.
        c = self.conn(srv)
        for _ in range(3):
            try:
                r = c.request("GET", "/health")
            except ConnectionClosed as e:
                self.fail("keep-alive connection closed after fuzzing: %r" % e.partial[:100])
            self.assertEqual(r.status, 200, r)
        self.assertEqual(srv.get("/health").status, 200)
        self.assertTrue(srv.alive())
