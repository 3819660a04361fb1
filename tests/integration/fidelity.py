"""The fidelity suite's machinery: a scripted upstream that answers what a
case says and records what it received, and the matching rules the cases
use (tests/fidelity/README.md describes the case format).

Matching: an expected dict matches when each of its keys matches (other
keys are free); a list matches a list of the same length element by
element; "$absent" means the key must not be there; "$any" that it must be
there with any value; any other value must be equal.
"""

import http.server
import json
import threading

from harness import HOST

ABSENT = "$absent"
ANY = "$any"


def match(expected, actual, where="$"):
    """Returns None when actual matches expected, else a description of the
    first difference."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return "%s: expected an object, got %r" % (where, _short(actual))
        for k, v in expected.items():
            if v == ABSENT:
                if k in actual:
                    return "%s.%s: must be absent, got %r" % (where, k, _short(actual[k]))
                continue
            if k not in actual:
                return "%s.%s: missing (have %s)" % (where, k, sorted(actual))
            if v == ANY:
                continue
            d = match(v, actual[k], "%s.%s" % (where, k))
            if d:
                return d
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return "%s: expected a list of %d, got %r" % (where, len(expected), _short(actual))
        for i, (e, a) in enumerate(zip(expected, actual)):
            d = match(e, a, "%s[%d]" % (where, i))
            if d:
                return d
        return None
    if expected == ANY:
        return None
    if expected != actual or type(expected) is not type(actual):
        return "%s: expected %r, got %r" % (where, expected, _short(actual))
    return None


def match_events(expected, events):
    """expected: an ordered list of event patterns ({"event": name, "data":
    pattern}); each must match some event after the previous match."""
    i = 0
    for n, e in enumerate(expected):
        while i < len(events) and match(e, events[i]) is not None:
            i += 1
        if i == len(events):
            return "event pattern #%d %s not found in order; events:\n%s" % (
                n, json.dumps(e)[:300], "\n".join(json.dumps(x)[:300] for x in events[:60]))
        i += 1
    return None


def _short(v):
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) < 300 else s[:300] + "..."


def parse_sse(body):
    """Client SSE text → [{"event": name or None, "data": JSON or text}]."""
    out = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if not data and name is None:
            continue
        text = "\n".join(data)
        try:
            val = json.loads(text)
        except ValueError:
            val = text
        out.append({"event": name, "data": val})
    return out


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self):
        up = self.server.scripted
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        rec = {"method": self.command, "path": self.path,
               "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
               "raw": raw.decode("utf-8", "replace")}
        with up.lock:
            up.records.append(rec)
            reply = up.reply
        if callable(reply):
            reply = reply(rec)
        status = reply.get("status", 200)
        if "sse" in reply:
            parts = []
            for ev in reply["sse"]:
                name, data = (ev[0], ev[1]) if isinstance(ev, list) else (None, ev)
                text = data if isinstance(data, str) else json.dumps(data)
                parts.append(("event: %s\n" % name if name else "") + "data: %s\n\n" % text)
            payload, ctype = "".join(parts).encode(), "text/event-stream"
        elif "ndjson" in reply:
            payload = "".join(json.dumps(x) + "\n" for x in reply["ndjson"]).encode()
            ctype = "application/x-ndjson"
        elif "json" in reply:
            payload, ctype = json.dumps(reply["json"]).encode(), "application/json"
        else:
            payload = reply.get("raw", "").encode()
            ctype = reply.get("content_type", "application/json")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in reply.get("headers", {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = _serve
    do_GET = _serve

    def log_message(self, *a):
        pass


class ScriptedUpstream:
    """One HTTP server answering every request with `reply` (set per case;
    or a function of the request record returning the reply) and recording
    each request ({method, path, headers, body, raw})."""

    def __init__(self):
        self.lock = threading.Lock()
        self.records = []
        self.reply = {"status": 500, "json": {"error": {"message": "no reply scripted"}}}
        self.httpd = http.server.ThreadingHTTPServer((HOST, 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.scripted = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://%s:%d" % (HOST, self.httpd.server_address[1])

    def script(self, reply):
        with self.lock:
            self.reply = reply
            self.records = []

    def received(self):
        with self.lock:
            return list(self.records)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
