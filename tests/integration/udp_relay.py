"""Lossy UDP relay for the HTTP/3 tests: sits between one QUIC client and the
server, drops / delays (reorders) / duplicates datagrams deterministically, and
can simulate a NAT rebinding (new source port toward the server).

    with UdpRelay(server_port, drop=0.05, reorder=0.1) as relay:
        run_client('127.0.0.1', relay.port); relay.rebind(); print(relay.stats())

Run this file to self-test it against Debian's gtlsserver/gtlsclient."""
import contextlib
import heapq
import random
import selectors
import socket
import threading
import time

MAX_HELD = 4096         # delayed datagrams held at once; beyond that, sent at once
MAX_DGRAM = 65535
C2S, S2C = 'c2s', 's2c'


class UdpRelay:
    def __init__(self, upstream_port: int, host='127.0.0.1', drop=0.0, reorder=0.0,
                 duplicate=0.0, seed=1, max_delay_ms=30, drop_first_n=0):
        self.host, self.upstream = host, (host, upstream_port)
        self.drop, self.reorder, self.duplicate = drop, reorder, duplicate
        self.max_delay_ms = max(5, max_delay_ms)
        self.drop_first_n = drop_first_n
        self.record, self.recorded = False, []  # record=True keeps every client datagram
        self.latency_ms = 0                     # > 0: every datagram waits this long, both ways
        # One RNG per direction, and a fixed number of draws per datagram, so the
        # fate of the k-th datagram of a direction does not depend on how the two
        # directions happened to interleave.
        self._rng = {C2S: random.Random(seed), S2C: random.Random(seed + 0x5EED)}
        self._stats = {d: dict(received=0, forwarded=0, dropped=0, reordered=0,
                               duplicated=0) for d in (C2S, S2C)}
        self._stats.update(rebinds=0, client_moves=0, from_port={})  # from_port: upstream port -> s2c count
        self._lock = threading.Lock()
        self._held = []                 # heap of (due, seq, direction, payload)
        self._seq, self._client, self._new_socks = 0, None, []  # rebind() fills _new_socks
        self._sel = self._thread = self._listen = self._up = self.port = None

    def start(self) -> int:
        if self._thread:
            return self.port
        self._stopping = False
        self._sel = selectors.DefaultSelector()
        self._listen = self._udp()
        self.port = self._listen.getsockname()[1]
        self._up = self._udp()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._listen, selectors.EVENT_READ, C2S)
        self._sel.register(self._up, selectors.EVENT_READ, S2C)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._loop, name='udp-relay', daemon=True)
        self._thread.start()
        return self.port

    def rebind(self) -> int:
        """New upstream socket from now on; the old ones stay open so late
        server replies to them still reach the client. Returns the new port."""
        s = self._udp()
        with self._lock:
            self._up = s
            self._new_socks.append(s)
            self._stats['rebinds'] += 1
        self._wake()
        return s.getsockname()[1]

    def stats(self) -> dict:
        with self._lock:
            out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._stats.items()}
            out['held'] = len(self._held)
            return out

    def stop(self):
        if not self._thread:
            return
        self._stopping = True
        self._wake()
        self._thread.join(1.0)
        self._thread = None
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()
        for s in self._new_socks + [self._wake_w]:
            s.close()
        self._sel.close()

    def __enter__(self):
        return self.start() and self

    def __exit__(self, *exc):
        self.stop()

    def _udp(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((self.host, 0))
        s.setblocking(False)
        # Large buffers: a 1 MB download arrives in bursts faster than a
        # Python thread drains them, and kernel drops would skew the numbers.
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            s.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        return s

    def _wake(self):
        with contextlib.suppress(OSError):
            self._wake_w.send(b'x')

    def _loop(self):
        while not self._stopping:
            with self._lock:
                timeout = max(0.0, self._held[0][0] - time.monotonic()) if self._held else None
                new, self._new_socks = self._new_socks, []
            for s in new:
                self._sel.register(s, selectors.EVENT_READ, S2C)
            for key, _ in self._sel.select(timeout):
                if key.data is None:    # wake-up: just empty the socketpair
                    with contextlib.suppress(OSError):
                        key.fileobj.recv(4096)
                else:
                    self._drain(key.fileobj, key.data)
            self._release_due()

    def _drain(self, sock, direction):
        for _ in range(256):    # bounded, so delayed datagrams get their turn
            try:
                data, addr = sock.recvfrom(MAX_DGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:     # e.g. ICMP port unreachable reported late
                continue
            if direction == C2S:
                # Follow the client's latest address (one client at a time), so
                # gtlsclient --change-local-addr works through the relay too.
                if self._client and addr != self._client:
                    with self._lock:
                        self._stats['client_moves'] += 1
                self._client = addr
            elif addr != self.upstream:
                continue
            else:
                p = sock.getsockname()[1]
                with self._lock:
                    self._stats['from_port'][p] = self._stats['from_port'].get(p, 0) + 1
            self._handle(direction, data)

    def _handle(self, direction, data):
        rng, st = self._rng[direction], self._stats[direction]
        r_drop, r_reo, r_dup, r_delay = rng.random(), rng.random(), rng.random(), rng.random()
        now = time.monotonic()
        with self._lock:
            st['received'] += 1
            if direction == C2S and self.record:
                self.recorded.append(data)  # what a replay attacker on the path would keep
            if (direction == C2S and st['received'] <= self.drop_first_n) or r_drop < self.drop:
                st['dropped'] += 1
                return
            copies = 2 if r_dup < self.duplicate else 1
            st['duplicated'] += copies - 1
            if self.latency_ms and len(self._held) < MAX_HELD:
                # A fixed one-way delay (a long path: bench/h3.sh's 0-RTT row).
                for _ in range(copies):
                    self._seq += 1
                    heapq.heappush(self._held, (now + self.latency_ms / 1000.0, self._seq, direction, data))
                return
            if r_reo < self.reorder and len(self._held) < MAX_HELD:
                delay = (5 + r_delay * (self.max_delay_ms - 5)) / 1000.0
                st['reordered'] += 1
                for _ in range(copies):
                    self._seq += 1
                    heapq.heappush(self._held, (now + delay, self._seq, direction, data))
                return
        for _ in range(copies):
            self._send(direction, data)

    def _release_due(self):
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._held or self._held[0][0] > now:
                    return
                _, _, direction, data = heapq.heappop(self._held)
            self._send(direction, data)

    def _send(self, direction, data):
        # c2s goes out of whichever upstream socket is current at send time.
        sock, dest = (self._up, self.upstream) if direction == C2S else (self._listen, self._client)
        if dest is None:
            return
        try:
            sock.sendto(data, dest)
            outcome = 'forwarded'
        except OSError:         # full buffer / unreachable: that is loss too
            outcome = 'dropped'
        with self._lock:
            self._stats[direction][outcome] += 1


if __name__ == '__main__':
    import filecmp, os, shutil, subprocess, sys, tempfile  # self-test only

    server = shutil.which('gtlsserver') or shutil.which('gtlsserver', path='/usr/sbin')
    client = shutil.which('gtlsclient')
    if not (server and client and shutil.which('certtool')):
        print('SKIP: needs gtlsserver (ngtcp2-server), gtlsclient (ngtcp2-client) '
              'and certtool (gnutls-bin)')
        sys.exit(0)
    tmp = tempfile.mkdtemp(prefix='udp-relay-')
    gen = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'certs', 'gen.sh')
    subprocess.run(['sh', gen, tmp + '/certs'], check=True)
    os.makedirs(tmp + '/www')
    with open(tmp + '/www/file', 'wb') as f:
        f.write(random.Random(7).randbytes(1 << 20))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(('127.0.0.1', 0))
        sport = probe.getsockname()[1]
    srv_log = open(tmp + '/server.log', 'wb')
    srv = subprocess.Popen([server, '-q', '-d', tmp + '/www', '127.0.0.1', str(sport),
                            tmp + '/certs/server.key', tmp + '/certs/server.pem'],
                           stdout=srv_log, stderr=srv_log)

    def download(port, name, relay=None):
        # gtlsclient exits 0 even on handshake timeout or 404, and does not
        # create --download's directory: the only proof is the file itself.
        dl = os.path.join(tmp, name)
        os.makedirs(dl)
        t0 = time.monotonic()
        p = subprocess.Popen([client, '-q', '--exit-on-all-streams-close', '--timeout=10s',
                              '--download', dl, '127.0.0.1', str(port),
                              'https://localhost:%d/file' % sport])
        if relay:   # rebind once the transfer is well under way
            while relay.stats()[S2C]['forwarded'] < 200 and time.monotonic() < t0 + 10:
                time.sleep(0.005)
            relay.rebind()
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
        got = os.path.join(dl, 'file')
        ok = os.path.exists(got) and filecmp.cmp(got, tmp + '/www/file', shallow=False)
        return ok, time.monotonic() - t0

    failures = 0
    try:
        for _ in range(100):    # wait until gtlsserver's port is bound
            if ':%04X ' % sport in open('/proc/net/udp').read():
                break
            time.sleep(0.05)
        cases = [('direct', None, False), ('lossy', dict(drop=0.05, reorder=0.1), False),
                 # each lost Initial costs a PTO (1 s, then 2 s: backoff)
                 ('lossy+dup+first2', dict(drop=0.05, reorder=0.1, duplicate=0.05,
                                           drop_first_n=2), False),
                 ('lossy+rebind', dict(drop=0.05, reorder=0.1), True)]
        for name, kw, rebind in cases:
            if kw is None:
                (ok, dt), st = download(sport, name), ''
            else:
                with UdpRelay(sport, **kw) as relay:
                    ok, dt = download(relay.port, name, relay if rebind else None)
                    st = relay.stats()
            if rebind:      # the server must have answered the new port
                ok = ok and st['rebinds'] == 1 and len(st['from_port']) == 2
            print('%s: %s %.2fs %s' % (name, 'ok' if ok else 'FAIL', dt, st))
            failures += not ok
    finally:
        srv.terminate()
        srv.wait(5)
        if failures:
            print(open(tmp + '/server.log', errors='replace').read()[-2000:])
        shutil.rmtree(tmp, ignore_errors=True)
    print('%d passed, %d failed' % (len(cases) - failures, failures))
    sys.exit(1 if failures else 0)
