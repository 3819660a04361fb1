"""Drive headless Chromium to fetch a URL over HTTP/3 (QUIC), trusting a test CA.

browser_fetch() starts Debian's chromium (new headless mode) with a throw-away
profile, speaks the Chrome DevTools Protocol over --remote-debugging-pipe
(fds 3/4, NUL-terminated JSON: no port to collide, no websocket code), loads a
page and reports status, body and the protocol the browser really used.

Why these choices (found on Chromium 156, Debian bookworm):
- Trust: --ignore-certificate-errors-spki-list with the base64 SHA-256 of the
  given cert's SubjectPublicKeyInfo. It works over QUIC for the CA *or* the
  leaf (any cert in the chain) and also forgives a host-name mismatch, so the
  test CA's a.test leaf serves https://localhost / 127.0.0.1. Chrome honours
  the flag only with an explicit --user-data-dir (we always pass one). A wrong
  SPKI or none fails with net::ERR_QUIC_PROTOCOL_ERROR (QUIC hides cert errors).
- QUIC: --enable-quic plus --origin-to-force-quic-on=HOST:PORT (exactly the
  host:port of the URL); without it Chrome uses TCP and, against a UDP-only
  server, fails with net::ERR_CONNECTION_REFUSED.
- Chrome resolves "localhost" to ::1 first and does not fall back for QUIC, so
  a server bound to 127.0.0.1 gets "Write failed ... -102". By default we map
  the URL's host to 127.0.0.1 with --host-resolver-rules (resolve_to=None: off).
- We run /usr/lib/chromium/chromium, not the /usr/bin wrapper: the wrapper adds
  extension flags and its /dev/shm size check prints a shell error when
  /dev/shm is listed twice. --disable-dev-shm-usage keeps small /dev/shm safe.
- dbus "Failed to call method" lines are noise (no bus in a container); they
  are dropped from stderr_tail.
"""
import base64, fcntl, hashlib, json, os, select, shutil, signal, ssl, subprocess
import sys, tempfile, time
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("HAPAX_CHROMIUM", "/usr/lib/chromium/chromium")


def spki_sha256_b64(cert_path):
    """base64(sha256(DER SubjectPublicKeyInfo)) of the first cert in a PEM file."""
    with open(cert_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return base64.b64encode(hashlib.sha256(_spki(der)).digest()).decode()


def _tlv(b, i):
    """Parse one DER TLV at i: return (start of value, end of value)."""
    n = b[i + 1]; i += 2
    if n & 0x80:
        k = n & 0x7F; n = int.from_bytes(b[i:i + k], "big"); i += k
    return i, i + n


def _spki(der):
    # Certificate -> tbsCertificate -> [version] serial sigAlg issuer validity
    # subject subjectPublicKeyInfo: walk the DER, no third-party parser needed.
    s, _ = _tlv(der, 0); i, _ = _tlv(der, s)
    if der[i] == 0xA0:                      # explicit [0] version
        i = _tlv(der, i)[1]
    for _ in range(5):
        i = _tlv(der, i)[1]
    return der[i:_tlv(der, i)[1]]


class _Pipe:
    """CDP over the two pipes; every read obeys the caller's deadline."""
    def __init__(self, wfd, rfd, deadline):
        self.w, self.r, self.deadline, self.buf, self.id, self.events = wfd, rfd, deadline, b"", 0, []

    def _next(self):
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("timed out waiting for the browser")
            chunk = os.read(self.r, 65536)
            if not chunk:
                raise EOFError("browser closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None):
        self.id += 1
        m = {"id": self.id, "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        os.write(self.w, json.dumps(m).encode() + b"\0")
        while True:
            msg = self._next()
            if msg.get("id") == self.id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, pred):
        while True:
            for k, e in enumerate(self.events):
                if pred(e):
                    return self.events.pop(k)
            self.events.append(self._next())


# In the page: fetch() from the same origin, then read the resource timing
# entry of that URL for nextHopProtocol ("h3" when QUIC carried it).
_FETCH_JS = """(async (url, init) => {
  const r = await fetch(url, init);
  const body = await r.text();
  const e = performance.getEntriesByName(r.url).pop() || {};
  return {status: r.status, body, protocol: e.nextHopProtocol || '',
          headers: Object.fromEntries(r.headers.entries())};
})(%s, %s)"""
_NAV_JS = """(() => { const e = performance.getEntriesByType('navigation')[0] || {};
  return {status: e.responseStatus || 0, protocol: e.nextHopProtocol || ''}; })()"""


def browser_fetch(url: str, ca_cert_path: str, quic_origin: str, timeout: float = 60.0,
                  method: str = "GET", body: str | None = None, headers: dict | None = None,
                  page_url: str | None = None, resolve_to: str | None = "127.0.0.1",
                  extra_args: list | None = None) -> dict:
    """Load url in headless Chromium over QUIC and return what the page got.

    GET (default): navigate to url; status/protocol come from the navigation
    timing entry, body is the exact response body (DevTools getResponseBody).
    POST etc. (or any call with body/headers): navigate to page_url (default: url's origin + '/health'),
    then fetch(url, {method, headers, body}) from that same-origin page.
    quic_origin is HOST:PORT for --origin-to-force-quic-on, or None to leave
    QUIC off. ok is True only for a 2xx response. Never hangs: everything
    shares one deadline and the browser's process group is killed at the end.
    """
    t0 = time.monotonic(); deadline = t0 + timeout
    res = {"ok": False, "status": 0, "body": "", "protocol": "", "net_protocol": "",
           "headers": {}, "error": "", "stderr_tail": "", "elapsed": 0.0}
    host, spki = urlsplit(url).hostname, spki_sha256_b64(ca_cert_path)  # raises before mkdtemp
    tmp = tempfile.mkdtemp(prefix="h3browser-")
    args = [CHROMIUM, "--headless=new", "--no-sandbox", f"--user-data-dir={tmp}/profile",
            "--remote-debugging-pipe", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-extensions", "--disable-sync",
            f"--ignore-certificate-errors-spki-list={spki}"]
    if quic_origin:
        args += ["--enable-quic", f"--origin-to-force-quic-on={quic_origin}"]
    if resolve_to and host not in (resolve_to, "127.0.0.1", "::1"):
        args.append(f"--host-resolver-rules=MAP {host} {resolve_to}")
    args += (extra_args or []) + ["about:blank"]
    to_chrome_r, to_chrome_w = os.pipe()      # chrome reads CDP commands on fd 3
    from_chrome_r, from_chrome_w = os.pipe()  # and writes replies/events on fd 4

    def child_fds():  # move both ends above 10 first so dup2 cannot clobber one
        a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
        b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.dup2(a, 3); os.dup2(b, 4)

    env = dict(os.environ, HOME=tmp)          # keep ~/.pki, caches, etc. in tmp
    errf = open(os.path.join(tmp, "stderr.txt"), "w+b")
    proc = None
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=errf, env=env, preexec_fn=child_fds,
                                close_fds=False, start_new_session=True)
        os.close(to_chrome_r); os.close(from_chrome_w)
        to_chrome_r = from_chrome_w = -1
        cdp = _Pipe(to_chrome_w, from_chrome_r, deadline)
        tid = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = cdp.call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
        for dom in ("Page.enable", "Network.enable", "Runtime.enable"):
            cdp.call(dom, session=sid)
        get = method.upper() == "GET" and body is None and not headers
        if get:
            target = url
        else:
            u = urlsplit(url)
            target = page_url or f"{u.scheme}://{u.netloc}/health"
        nav = cdp.call("Page.navigate", {"url": target}, session=sid)
        if nav.get("errorText"):
            res["error"] = f"navigate {target}: {nav['errorText']}"
            for e in cdp.events:  # an empty-bodied 4xx/5xx is an "error" page, yet had a response
                p = e.get("params", {})
                if e.get("method") == "Network.responseReceived" and p.get("requestId") == nav.get("loaderId"):
                    res["status"] = p["response"].get("status", 0)
                    res["net_protocol"] = p["response"].get("protocol", "")
            return res
        cdp.wait_event(lambda e: e.get("method") == "Page.loadEventFired")
        doc = nav.get("loaderId")  # a navigation's requestId equals its loaderId
        if get:
            ev = cdp.wait_event(lambda e: e.get("method") == "Network.responseReceived"
                                and e["params"].get("requestId") == doc)["params"]["response"]
            res["net_protocol"], res["headers"] = ev.get("protocol", ""), ev.get("headers", {})
            r = cdp.call("Runtime.evaluate", {"expression": _NAV_JS, "returnByValue": True},
                         session=sid)["result"]["value"]
            res["status"], res["protocol"] = r["status"] or ev.get("status", 0), r["protocol"]
            b = cdp.call("Network.getResponseBody", {"requestId": doc}, session=sid)
            res["body"] = (base64.b64decode(b["body"]).decode("utf-8", "replace")
                           if b.get("base64Encoded") else b["body"])
        else:
            init = {"method": method.upper(), "headers": headers or {}, "cache": "no-store"}
            if body is not None:
                init["body"] = body
            r = cdp.call("Runtime.evaluate", {"expression": _FETCH_JS % (json.dumps(url), json.dumps(init)),
                                              "awaitPromise": True, "returnByValue": True},
                         session=sid)
            if "exceptionDetails" in r:   # e.g. TypeError: Failed to fetch
                d = r["exceptionDetails"]
                res["error"] = "fetch: " + d.get("exception", {}).get("description", d.get("text", ""))
                return res
            v = r["result"]["value"]
            res.update(status=v["status"], body=v["body"], protocol=v["protocol"], headers=v["headers"])
            for e in cdp.events:          # the fetch's own response, as the network saw it
                p = e.get("params", {})
                if e.get("method") == "Network.responseReceived" and p.get("type") == "Fetch":
                    res["net_protocol"] = p["response"].get("protocol", "")
        res["ok"] = 200 <= res["status"] < 300
        return res
    except (TimeoutError, EOFError, RuntimeError, OSError, KeyError) as e:
        res["error"] = f"{type(e).__name__}: {e}"
        return res
    finally:
        if proc is not None and to_chrome_w >= 0:
            try:  # ask for a clean exit; closing the pipe alone makes Chrome log pipe errors
                os.write(to_chrome_w, json.dumps({"id": 1 << 30, "method": "Browser.close"}).encode() + b"\0")
                proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for fd in (to_chrome_r, from_chrome_w, to_chrome_w, from_chrome_r):
            if fd >= 0:
                os.close(fd)
        if proc is not None:
            try:                            # the whole group: renderers, GPU, zygote
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        errf.seek(0)
        lines = [l for l in errf.read().decode("utf-8", "replace").splitlines() if "dbus/" not in l]
        errf.close()
        res["stderr_tail"] = "\n".join(lines[-15:])[-3000:]
        res["elapsed"] = round(time.monotonic() - t0, 2)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    # usage: h3_browser.py URL CA_PEM QUIC_ORIGIN|- [POST_BODY]
    # QUIC_ORIGIN "-" leaves QUIC off (the negative check); a 4th argument POSTs
    # it as JSON from a same-origin page (origin + /health).
    if len(sys.argv) < 4:
        sys.exit(__doc__.split("\n")[0] + "\nusage: h3_browser.py URL CA_PEM QUIC_ORIGIN|- [POST_BODY]")
    origin = None if sys.argv[3] == "-" else sys.argv[3]
    kw = {}
    if len(sys.argv) > 4:
        kw = {"method": "POST", "body": sys.argv[4], "headers": {"content-type": "application/json"}}
    out = browser_fetch(sys.argv[1], sys.argv[2], origin, **kw)
    print(json.dumps(out, indent=2))
    sys.exit(0 if out["ok"] else 1)
