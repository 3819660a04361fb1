"""Integration test harness for hapax: starts the real binary, talks to it
over sockets, reads its logs. Python 3 standard library only.

The binary comes from harness.BIN (set by run.py) or $HAPAX_BIN. Every
socket operation has a deadline; every wait on the child process is bounded.

Sanitizers: the child runs with ASAN_OPTIONS / UBSAN_OPTIONS set so that an
ASan+UBSan build aborts on the first error, its stderr goes to a file per
test, and HapaxTestCase fails the test when that file contains a sanitizer
report (checked after the process has exited).
"""

import ctypes
import errno
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))

BIN = os.environ.get("HAPAX_BIN") or os.path.join(REPO_ROOT, "build", "hapax")
# Where per-test config files and child stderr/stdout are written.
ARTIFACTS = os.environ.get("HAPAX_IT_ARTIFACTS") or None

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 5.0          # any single socket operation
READY_TIMEOUT = 10.0           # server start until GET /health answers
EXIT_TIMEOUT = 10.0            # SIGTERM until the process must be gone

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


# ---------------------------------------------------------------------------
# small utilities

# Secret values tests put in configs or requests (client keys, provider
# keys). run.py fails the whole run if any appears in a child's output.
TEST_SECRETS = set()


def secret(value):
    """Registers a test secret and returns it."""
    TEST_SECRETS.add(value)
    return value


def artifacts_root():
    global ARTIFACTS
    if ARTIFACTS is None:
        ARTIFACTS = tempfile.mkdtemp(prefix="hapax-it-")
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS


# Ports for the servers tests start come from one counter shared by every
# test process on the machine (a locked file), walking 20000-31999: below
# the kernel's ephemeral range (32768+), so no outgoing connection takes
# one, and never the same port to two tests running side by side (run.py
# -j, or the ASan and release passes at once). A port still bound by
# something else is skipped.
PORT_LO, PORT_HI = 20000, 32000
PORT_COUNTER = os.path.join(tempfile.gettempdir(), "hapax-it-ports")


def _next_port_number():
    import fcntl
    fd = os.open(PORT_COUNTER, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 32, 0).strip()
        n = int(raw) if raw.isdigit() else int.from_bytes(os.urandom(2), "big")
        os.pwrite(fd, b"%-31d\n" % (n + 1), 0)
        return PORT_LO + n % (PORT_HI - PORT_LO)
    finally:
        os.close(fd)


def _bindable(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port():
    """A port no other test was given lately and nothing holds now."""
    for _ in range(PORT_HI - PORT_LO):
        port = _next_port_number()
        if _bindable(port):
            return port
    raise RuntimeError("no free port in %d-%d" % (PORT_LO, PORT_HI))


def child_env(extra=None):
    env = dict(os.environ)
    # Never let the runner's own sanitizer settings leak in.
    env.update(SANITIZER_ENV)
    if extra:
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
    return env


def _die_with_parent():
    """preexec_fn: SIGKILL the child if the test runner dies (PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def sanitizer_findings(text):
    """Lines of `text` that carry a sanitizer report marker."""
    return [ln for ln in text.splitlines() if any(m in ln for m in SANITIZER_MARKERS)]


def describe_status(rc):
    """'1', or '-6 (killed by SIGABRT)' for a death by signal."""
    if rc is None:
        return "None (still running)"
    if rc < 0:
        try:
            return "%d (killed by %s)" % (rc, signal.Signals(-rc).name)
        except ValueError:
            return "%d (killed by signal %d)" % (rc, -rc)
    return str(rc)


def tail(text, n=40):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------------------
# tiny YAML renderer (nested dicts / lists / scalars)

_PLAIN_RE = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def yaml_scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    looks_number = re.match(r"^[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?$", s) is not None
    if _PLAIN_RE.match(s) and s.lower() not in _RESERVED and not looks_number:
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def _is_scalar(v):
    return not isinstance(v, (dict, list, tuple))


def render_yaml(obj, indent=0):
    """Render nested dicts/lists/scalars as block YAML."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if _is_scalar(v):
                out.append("%s%s: %s" % (pad, k, yaml_scalar(v)))
            elif isinstance(v, dict) and not v:
                out.append("%s%s: {}" % (pad, k))
            elif isinstance(v, (list, tuple)) and not v:
                out.append("%s%s: []" % (pad, k))
            else:
                out.append("%s%s:" % (pad, k))
                out.append(render_yaml(v, indent + 1))
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            if _is_scalar(item):
                out.append("%s- %s" % (pad, yaml_scalar(item)))
            elif isinstance(item, dict) and item:
                body = render_yaml(item, indent + 1).splitlines()
                # first key goes on the dash line
                out.append("%s- %s" % (pad, body[0].lstrip()))
                out.extend(body[1:])
            else:
                out.append("%s- %s" % (pad, "{}" if isinstance(item, dict) else "[]"))
    else:
        out.append(pad + yaml_scalar(obj))
    return "\n".join(out)


def deep_merge(base, over):
    """Return base with `over` merged in (dicts recursively; None deletes)."""
    res = dict(base)
    for k, v in (over or {}).items():
        if v is None:
            res.pop(k, None)
        elif isinstance(v, dict) and isinstance(res.get(k), dict):
            res[k] = deep_merge(res[k], v)
        else:
            res[k] = v
    return res


def base_config(port):
    return {
        "server": {
            "host": HOST,
            "port": port,
            # Bounded so that a test that leaves a connection open cannot
            # make the stop() in tearDown wait for the default.
            "shutdown_timeout": "5s",
        },
    }


# ---------------------------------------------------------------------------
# HTTP responses and raw sockets

class ConnectionClosed(Exception):
    """The peer closed (EOF or reset) before a complete message arrived."""

    def __init__(self, msg, partial=b"", reset=False):
        super().__init__(msg)
        self.partial = partial
        self.reset = reset


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head=b""):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value), in order
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has_token(self, name, token):
        """True when the comma-separated header `name` contains `token` (case-insensitive)."""
        for v in self.header_all(name):
            if token.lower() in [t.strip().lower() for t in v.split(",")]:
                return True
        return False

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        body = self.body[:300]
        return "<Response %s %s %r headers=%r body=%r>" % (
            self.version, self.status, self.reason, self.headers, body)


def _parse_head(head):
    """Parse status line + header lines (bytes, without the final CRLFCRLF)."""
    lines = head.split(b"\r\n")
    m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise ValueError("bad status line: %r" % lines[0][:200])
    headers = []
    for ln in lines[1:]:
        if not ln:
            continue
        if b":" not in ln:
            raise ValueError("bad header line: %r" % ln[:200])
        k, v = ln.split(b":", 1)
        headers.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
    return (m.group(1).decode(), int(m.group(2)),
            (m.group(3) or b"").decode("latin-1"), headers)


class RawConn:
    """A client socket with a receive buffer and deadline-bounded reads."""

    def __init__(self, port, host=HOST, timeout=DEFAULT_TIMEOUT, rcvbuf=None):
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        else:
            # SO_RCVBUF must be set before connect() to bound the window.
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect((host, port))
            except OSError:
                self.sock.close()
                raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- sending
    def send(self, data):
        """sendall with the connection timeout; raises on error."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def try_send(self, data):
        """sendall that reports a peer close/reset as False instead of raising."""
        try:
            self.send(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            return False
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET):
                return False
            raise

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- receiving
    def _recv_more(self, deadline):
        """Read once into buf. Returns bytes read (0 = EOF/reset). Raises
        TimeoutError when the deadline passes with nothing to read."""
        if self.eof:
            return 0
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data within the deadline")
        except (ConnectionResetError, ConnectionAbortedError):
            self.eof = True
            self.reset = True
            return 0
        if not data:
            self.eof = True
            return 0
        self.buf += data
        return len(data)

    def _fill_until(self, predicate, deadline, what):
        while not predicate():
            if self._recv_more(deadline) == 0:
                raise ConnectionClosed("connection closed while waiting for %s" % what,
                                       bytes(self.buf), self.reset)

    def _take(self, n):
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_response(self, method="GET", timeout=None, max_head=1 << 20):
        """Read one full response. Honors 1xx/204/304/HEAD (no body),
        chunked, Content-Length, and read-until-close otherwise."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)

        def have_head():
            if len(self.buf) > max_head:
                raise ValueError("response head larger than %d bytes" % max_head)
            return b"\r\n\r\n" in self.buf
        self._fill_until(have_head, deadline, "response head")
        idx = self.buf.index(b"\r\n\r\n")
        raw_head = self._take(idx + 4)
        version, status, reason, headers = _parse_head(raw_head[:-4])
        resp = Response(version, status, reason, headers, b"", raw_head)

        if 100 <= status < 200 or status in (204, 304) or method.upper() == "HEAD":
            return resp
        te = ",".join(resp.header_all("Transfer-Encoding")).lower()
        if "chunked" in te:
            resp.body = self._read_chunked(deadline)
        elif resp.header("Content-Length") is not None:
            n = int(resp.header("Content-Length"))
            self._fill_until(lambda: len(self.buf) >= n, deadline, "response body")
            resp.body = self._take(n)
        else:
            resp.body = self.read_until_close(max(0.0, deadline - time.monotonic()))
        return resp

    def _read_chunked(self, deadline):
        body = bytearray()
        while True:
            self._fill_until(lambda: b"\r\n" in self.buf, deadline, "chunk size")
            line = self._take(self.buf.index(b"\r\n") + 2)[:-2]
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                # trailers until an empty line
                while True:
                    self._fill_until(lambda: b"\r\n" in self.buf, deadline, "trailer")
                    t = self._take(self.buf.index(b"\r\n") + 2)
                    if t == b"\r\n":
                        return bytes(body)
            self._fill_until(lambda: len(self.buf) >= size + 2, deadline, "chunk data")
            body += self._take(size)
            if self._take(2) != b"\r\n":
                raise ValueError("chunk not followed by CRLF")

    def read_head(self, timeout=None, max_head=1 << 20):
        """Reads only the status line and headers; the body stays in buf."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)

        def have_head():
            if len(self.buf) > max_head:
                raise ValueError("response head larger than %d bytes" % max_head)
            return b"\r\n\r\n" in self.buf
        self._fill_until(have_head, deadline, "response head")
        raw_head = self._take(self.buf.index(b"\r\n\r\n") + 4)
        version, status, reason, headers = _parse_head(raw_head[:-4])
        return Response(version, status, reason, headers, b"", raw_head)

    def read_until(self, marker, timeout=None):
        """Receives until `marker` (bytes) is in buf (kept there). Raises
        TimeoutError / ConnectionClosed when it does not come."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        self._fill_until(lambda: marker in self.buf, deadline, repr(marker))

    def read_until_close(self, timeout=None):
        """All bytes until EOF/reset. Raises TimeoutError if still open at the deadline."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not self.eof:
            self._recv_more(deadline)
        return self._take(len(self.buf))

    def wait_closed(self, timeout=None):
        """True when the peer closes (EOF or reset) within `timeout`; any
        data received meanwhile stays in buf. False on timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        try:
            while not self.eof:
                self._recv_more(deadline)
        except TimeoutError:
            return False
        return True

    def closed_now(self, wait=0.0):
        """Non-destructive check: has the peer closed (data is kept in buf)?"""
        return self.wait_closed(wait) if wait > 0 else self._poll_closed()

    def _poll_closed(self):
        if self.eof:
            return True
        try:
            self.sock.setblocking(False)
            try:
                data = self.sock.recv(65536)
            finally:
                self.sock.setblocking(True)
        except (BlockingIOError, InterruptedError):
            return False
        except (ConnectionResetError, ConnectionAbortedError):
            self.eof = self.reset = True
            return True
        if not data:
            self.eof = True
            return True
        self.buf += data
        return False

    def request(self, method, path, headers=None, body=None, version="HTTP/1.1", timeout=None):
        """Send one request (Host added unless given) and read its response."""
        self.send(build_request(method, path, headers, body, version))
        return self.read_response(method, timeout=timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def build_request(method, path, headers=None, body=None, version="HTTP/1.1"):
    """Bytes of a request. `headers` is a list of pairs or a dict; Host is
    added unless present; Content-Length is added for a body unless a
    Content-Length or Transfer-Encoding header is given."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    headers = list(headers or [])
    names = {k.lower() for k, _ in headers}
    if "host" not in names:
        headers.insert(0, ("Host", "localhost"))
    if isinstance(body, str):
        body = body.encode()
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    lines = ["%s %s %s" % (method, path, version)] + ["%s: %s" % (k, v) for k, v in headers]
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return out + (body or b"")


def chunked(body, size=5):
    """Encode `body` as chunked transfer coding with chunks of `size` bytes."""
    if isinstance(body, str):
        body = body.encode()
    out = bytearray()
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)


def http_request(port, method, path, headers=None, body=None, timeout=DEFAULT_TIMEOUT):
    """One request with http.client on a fresh connection. Returns a Response."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        r = conn.getresponse()
        body = r.read()
        version = "HTTP/1.1" if r.version == 11 else "HTTP/1.0"
        return Response(version, r.status, r.reason, list(r.getheaders()), body)
    finally:
        conn.close()


def connect_refused_or_closed(port, timeout=2.0, probe=b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"):
    """Try a new connection. Returns (outcome, detail) where outcome is
    'refused' (connect failed), 'closed' (accepted but closed without a
    successful response; detail = bytes received) or 'served' (a response
    other than a close came back; detail = the Response)."""
    try:
        c = RawConn(port, timeout=timeout)
    except (ConnectionRefusedError, socket.timeout, TimeoutError, OSError):
        return "refused", None
    try:
        c.try_send(probe)
        try:
            resp = c.read_response(timeout=timeout)
        except ConnectionClosed as e:
            return "closed", e.partial
        except TimeoutError:
            return "timeout", bytes(c.buf)
        if resp.status >= 500 and c.wait_closed(timeout):
            return "closed", resp
        return "served", resp
    finally:
        c.close()


# ---------------------------------------------------------------------------
# the server process

class HapaxServer:
    """One hapax child process with its own config file and stderr file."""

    def __init__(self, workdir, name="srv", overrides=None, config_text=None, env=None,
                 args=None, port=None, binary=None):
        self.workdir = workdir
        self.name = name
        self.binary = binary or BIN
        self.port = port if port is not None else free_port()
        self.config_path = os.path.join(workdir, name + ".yaml")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        if config_text is None:
            config_text = render_yaml(deep_merge(base_config(self.port), overrides or {})) + "\n"
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.env = env
        self.args = list(args or [])
        self.proc = None
        self.returncode = None
        self.expected_exit = 0      # checked by HapaxTestCase.tearDown; None = any
        self.allow_leaks = False    # a forced (second-signal) exit may leak

    # -- lifecycle
    def start(self, wait_ready=True):
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--config", self.config_path] + self.args,
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
            env=child_env(self.env), preexec_fn=_die_with_parent, cwd=self.workdir)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._closefiles()
                raise AssertionError("hapax exited with %s before answering /health; stderr:\n%s"
                                     % (self.proc.returncode, tail(self.stderr_text())))
            try:
                r = http_request(self.port, "GET", "/health", timeout=1.0)
                if r.status == 200:
                    return
                last = "status %d" % r.status
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError("hapax did not answer GET /health within %.0fs (last: %s); stderr:\n%s"
                             % (timeout, last, tail(self.stderr_text())))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Exit status, or None when still running after `timeout`."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.returncode = rc
        self._closefiles()
        return rc

    def stop(self, timeout=EXIT_TIMEOUT):
        """SIGTERM and wait. Returns the exit status; SIGKILLs and raises
        AssertionError when the process does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.kill()
            raise AssertionError("hapax did not exit within %.0fs of SIGTERM" % timeout)
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            self.returncode = self.proc.returncode
        self._closefiles()

    def _closefiles(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f is not None and not f.closed:
                f.close()

    # -- output
    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def settled_stderr_text(self, quiet=0.03, limit=1.0):
        """stderr once it stopped growing for `quiet` seconds (at most
        `limit`): a log writer thread writes lines a moment after the answer
        that caused them went out."""
        text = self.stderr_text()
        if not self.alive():
            return text
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(quiet)
            again = self.stderr_text()
            if len(again) == len(text):
                break
            text = again
        return text

    def log_lines(self):
        """Non-empty stderr lines (complete lines only)."""
        text = self.settled_stderr_text()
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        return [ln for ln in text.split("\n") if ln.strip()]

    def logs(self):
        """(records, bad_lines): stderr lines parsed as JSON objects, and
        the lines that are not JSON objects."""
        recs, bad = [], []
        for ln in self.log_lines():
            try:
                obj = json.loads(ln)
            except ValueError:
                bad.append(ln)
                continue
            if isinstance(obj, dict):
                recs.append(obj)
            else:
                bad.append(ln)
        return recs, bad

    def wait_log(self, predicate, timeout=DEFAULT_TIMEOUT):
        """Poll the JSON log until a record satisfies predicate; returns it or None."""
        deadline = time.monotonic() + timeout
        while True:
            for r in self.logs()[0]:
                if predicate(r):
                    return r
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def sanitizer_report(self):
        return sanitizer_findings(self.stderr_text())

    # -- convenience
    def conn(self, timeout=DEFAULT_TIMEOUT):
        return RawConn(self.port, timeout=timeout)

    def get(self, path, headers=None, timeout=DEFAULT_TIMEOUT):
        return http_request(self.port, "GET", path, headers=headers, timeout=timeout)

    def request(self, method, path, headers=None, body=None, timeout=DEFAULT_TIMEOUT):
        return http_request(self.port, method, path, headers=headers, body=body, timeout=timeout)


# ---------------------------------------------------------------------------
# the mock LLM provider (tests/mock, built as mock-provider)

MOCK_BIN = os.environ.get("HAPAX_MOCK_BIN") or None


def mock_binary():
    """$HAPAX_MOCK_BIN, else the mock-provider next to the hapax binary under
    test (build-asan/hapax -> build-asan/mock-provider), else build/."""
    if MOCK_BIN:
        return MOCK_BIN
    here = os.path.join(os.path.dirname(os.path.abspath(BIN)), "mock-provider")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return os.path.join(REPO_ROOT, "build", "mock-provider")


class MockProvider:
    """One mock-provider child on a free port (it binds port 0 and prints
    "listening on PORT"). Its control endpoints are wrapped: last(),
    stats(), reset(), arm()."""

    def __init__(self, workdir, name="mock", args=None, binary=None):
        self.workdir = workdir
        self.name = name
        self.binary = binary or mock_binary()
        self.args = list(args or [])
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.proc = None
        self.port = None
        self.returncode = None

    def start(self, timeout=READY_TIMEOUT):
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise AssertionError("mock provider binary not found: %s (ninja -C build)" % self.binary)
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([self.binary, "--port", "0"] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._err, env=child_env(), cwd=self.workdir,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        out = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in out:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise AssertionError("mock provider printed no 'listening on' line within %.0fs"
                                     % timeout)
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            data = os.read(fd, 4096)
            if not data:
                self.kill()
                raise AssertionError("mock provider exited before listening (status %s): %s"
                                     % (self.proc.returncode, self.stderr_text()[-2000:]))
            out += data
        m = re.search(rb"listening on (\d+)", out)
        if not m:
            self.kill()
            raise AssertionError("unexpected mock provider output: %r" % out[:200])
        self.port = int(m.group(1))
        return self

    @property
    def url(self):
        """http://127.0.0.1:PORT (no trailing slash)."""
        return "http://%s:%d" % (HOST, self.port)

    def endpoint(self, kind, fault=None):
        """The `endpoint` for a provider of type `kind` served by this mock;
        fault="500" (or hang, reset, ...) prefixes /fault/MODE."""
        base = self.url + ("/fault/%s" % fault if fault else "")
        return base if kind == "ollama" else base + "/v1"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- control endpoints
    def _control(self, method, path, body=None):
        hdrs = {"Content-Type": "application/json"} if body is not None else None
        data = json.dumps(body) if body is not None else None
        r = http_request(self.port, method, path, headers=hdrs, body=data, timeout=DEFAULT_TIMEOUT)
        if r.status != 200:
            raise AssertionError("mock %s %s: %r" % (method, path, r))
        return r

    def last(self):
        """The last provider request: {method, path, query, headers, body}
        (header names lower-case; body parsed JSON, a string when not JSON),
        or None."""
        return self._control("GET", "/_mock/last").json()

    def last_raw(self):
        """The /_mock/last document as text (numbers keep the text they
        were received with)."""
        return self._control("GET", "/_mock/last").body.decode("utf-8")

    def stats(self):
        """{requests, active, connections, fault, fault_count}."""
        return self._control("GET", "/_mock/stats").json()

    def reset(self):
        return self._control("POST", "/_mock/reset").json()

    def arm(self, mode, count=1, delay_ms=None, retry_after=None):
        """Fault for the next `count` provider requests (-1: all)."""
        body = {"mode": str(mode), "count": count}
        if delay_ms is not None:
            body["delay_ms"] = delay_ms
        if retry_after is not None:
            body["retry_after"] = retry_after
        return self._control("POST", "/_mock/fault", body).json()

    def wait_stats(self, predicate, timeout=DEFAULT_TIMEOUT):
        """Polls stats() until predicate(stats) holds; returns the last stats
        and whether it held."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if predicate(st):
                return st, True
            if time.monotonic() >= deadline:
                return st, False
            time.sleep(0.05)

    # -- lifecycle
    def stop(self, timeout=EXIT_TIMEOUT):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._closefiles()
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            self.returncode = self.proc.returncode
        self._closefiles()

    def _closefiles(self):
        if self.proc is not None and self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()
        f = getattr(self, "_err", None)
        if f is not None and not f.closed:
            f.close()

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def sanitizer_report(self):
        return sanitizer_findings(self.stderr_text())


def run_cli(args, workdir=None, env=None, timeout=20.0, stdin_data=None):
    """Run `hapax ARGS` to completion. Returns CompletedProcess (text)."""
    return subprocess.run([BIN] + list(args), input=stdin_data, capture_output=True,
                          text=True, errors="replace", timeout=timeout,
                          env=child_env(env), cwd=workdir or REPO_ROOT,
                          preexec_fn=_die_with_parent)


# ---------------------------------------------------------------------------
# base test case

class HapaxTestCase(unittest.TestCase):
    """Gives each test a work directory, starts servers for it, and in
    tearDown stops them (SIGTERM), requires exit status 0 (unless the test
    changed srv.expected_exit) and no sanitizer report in their stderr."""

    maxDiff = 4000

    def setUp(self):
        root = artifacts_root()
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.id())
        self.workdir = os.path.join(root, safe)
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(self.workdir)
        self._servers = []
        self._cli_runs = []
        self._conns = []

    def tearDown(self):
        for c in self._conns:
            c.close()
        problems = []
        for srv in self._servers:
            try:
                if srv.alive():
                    rc = srv.stop()
                else:
                    rc = srv.wait_exit(EXIT_TIMEOUT)
            except AssertionError as e:
                problems.append("%s: %s" % (srv.name, e))
                rc = srv.returncode
            if srv.expected_exit is not None and rc != srv.expected_exit:
                problems.append("%s: exit status %s, expected %s; stderr tail:\n%s"
                                % (srv.name, describe_status(rc), srv.expected_exit,
                                   tail(srv.stderr_text(), 20)))
            found = srv.sanitizer_report()
            if srv.allow_leaks:
                found = [f for f in found if "LeakSanitizer" not in f]
            if found:
                problems.append("%s: sanitizer report in stderr (%s):\n%s"
                                % (srv.name, srv.stderr_path, tail(srv.stderr_text(), 60)))
        for name, text in self._cli_runs:
            if sanitizer_findings(text):
                problems.append("%s: sanitizer report in stderr:\n%s" % (name, tail(text, 60)))
        if problems:
            self.fail("\n".join(problems))

    # -- helpers for tests
    def start_server(self, overrides=None, config_text=None, env=None, wait_ready=True, name=None,
                     args=None):
        name = name or "srv%d" % len(self._servers)
        srv = HapaxServer(self.workdir, name=name, overrides=overrides, config_text=config_text,
                          env=env, args=args)
        self._servers.append(srv)
        srv.start(wait_ready=wait_ready)
        return srv

    def start_mock(self, name=None, args=None):
        """Starts a mock provider for this test; it is stopped after
        tearDown (so after hapax), and a sanitizer report in its stderr
        fails the test."""
        name = name or "mock%d" % len(getattr(self, "_mocks", []))
        if not hasattr(self, "_mocks"):
            self._mocks = []
        m = MockProvider(self.workdir, name=name, args=args)
        self._mocks.append(m)
        self.addCleanup(self._stop_mock, m)
        m.start()
        return m

    def _stop_mock(self, m):
        m.stop()
        found = m.sanitizer_report()
        if found:
            self.fail("%s: sanitizer report in stderr (%s):\n%s"
                      % (m.name, m.stderr_path, tail(m.stderr_text(), 60)))

    def conn(self, srv, timeout=DEFAULT_TIMEOUT):
        c = srv.conn(timeout)
        self._conns.append(c)
        return c

    def cli(self, args, env=None, timeout=20.0):
        res = run_cli(args, workdir=self.workdir, env=env, timeout=timeout)
        self._cli_runs.append(("hapax " + " ".join(args), res.stderr))
        return res

    def write_file(self, name, text):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- assertions
    def assertCommonHeaders(self, resp):
        rid = resp.header("X-Request-ID")
        self.assertTrue(rid, "response has no X-Request-ID: %r" % resp)
        rt = resp.header("X-Response-Time")
        self.assertTrue(rt, "response has no X-Response-Time: %r" % resp)
        # Go duration text with three decimals (time.ParseDuration reads it)
        self.assertRegex(rt, r"^[0-9]+\.[0-9]{3}(us|ms|s)$")

    def assertJsonError(self, resp, status, code):
        """The uniform JSON error: status, Content-Type, body shape, code,
        request_id equal to the X-Request-ID header. Returns the error object."""
        self.assertEqual(resp.status, status, "unexpected status: %r" % resp)
        self.assertCommonHeaders(resp)
        ctype = (resp.header("Content-Type") or "").split(";")[0].strip().lower()
        self.assertEqual(ctype, "application/json", "error Content-Type: %r" % resp)
        try:
            doc = resp.json()
        except ValueError:
            self.fail("error body is not JSON: %r" % resp)
        self.assertIsInstance(doc, dict, resp)
        self.assertIn("error", doc, resp)
        err = doc["error"]
        self.assertIsInstance(err, dict, resp)
        if doc.get("type") == "error":
            return self._anthropic_error(resp, doc, status, code)
        for key in ("message", "type", "code", "request_id"):
            self.assertIn(key, err, "error object lacks %r: %r" % (key, resp))
            self.assertIsInstance(err[key], str, "error.%s is not a string: %r" % (key, resp))
        self.assertTrue(err["message"], resp)
        self.assertTrue(err["type"], resp)
        self.assertEqual(err["code"], code, "error code: %r" % resp)
        self.assertEqual(err["request_id"], resp.header("X-Request-ID"),
                         "error.request_id differs from X-Request-ID: %r" % resp)
        return err

    # Anthropic's error types (the /v1/messages dialect) by status; the
    # gateway's own overload answers are overloaded_error.
    ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                       404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                       504: "timeout_error"}

    def _anthropic_error(self, resp, doc, status, code):
        """The Anthropic dialect: {"type":"error","error":{"type","message"},
        "request_id"}, with the request-id header."""
        err = doc["error"]
        self.assertEqual(set(doc), {"type", "error", "request_id"}, resp)
        for key in ("message", "type"):
            self.assertIsInstance(err.get(key), str, "error.%s is not a string: %r" % (key, resp))
        self.assertTrue(err["message"], resp)
        want = self.ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        if code in ("queue_full", "queue_timeout", "overloaded", "too_many_connections"):
            want = "overloaded_error"
        self.assertEqual(err["type"], want, "error type: %r" % resp)
        self.assertEqual(doc["request_id"], resp.header("X-Request-ID"), resp)
        self.assertEqual(resp.header("request-id"), resp.header("X-Request-ID"), resp)
        return err

    def assertClosedAfter(self, conn, timeout=DEFAULT_TIMEOUT, what="the response"):
        """The server closes `conn` within `timeout` and sends nothing more."""
        closed = conn.wait_closed(timeout)
        self.assertTrue(closed, "server did not close the connection within %.1fs after %s"
                        % (timeout, what))
        self.assertEqual(bytes(conn.buf), b"", "unexpected bytes after %s: %r" % (what, bytes(conn.buf[:200])))
