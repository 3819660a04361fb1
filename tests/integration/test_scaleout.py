"""Several instances sharing state through Redis (state.backend: redis).

A real redis-server (Debian's) on a private port without persistence,
started and stopped here; three gateway instances on their own ports,
one mock provider.
- Cluster-wide limits: one key hammered through all three instances gets
  what its limit allows for the elapsed time, within 1%; with the
  in-process store each instance would allow the whole limit.
- Redis failure: stopping Redis under load neither crashes nor hangs;
  on_failure local serves with each instance's share of the limit, deny
  answers 503; the degraded state shows in /health, /metrics and a log
  event, and recovery is logged; afterwards the limits are exact again.
- The heartbeat: the instance count in /health and /metrics.
"""

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import unittest

from harness import HapaxTestCase, free_port, http_request
from redis_server import REDIS, Redis
from test_providers import provider, user

KEY = "hx-scale-key"


def bearer(key):
    return {"Authorization": "Bearer " + key}


def chat(stream=False, said="hello", max_tokens=None):
    b = {"messages": [user(said)]}
    if stream:
        b["stream"] = True
    if max_tokens:
        b["max_tokens"] = max_tokens
    return json.dumps(b)


@unittest.skipUnless(REDIS and shutil.which("redis-cli"), "redis-server is not installed")
class ScaleOutCase(HapaxTestCase):
    def setUp(self):
        super().setUp()
        self.redis = Redis(self.workdir).start()
        self.addCleanup(self.redis.stop)

    def cluster(self, n=3, rate=None, on_failure="local", prefix="t:", extra=None, fault=None, llm=None,
                wait_ok=True):
        mock = getattr(self, "mock", None) or self.start_mock()
        self.mock = mock
        p = provider("openai", mock, fault=fault)
        p.update({"retry": {"max_retries": 0}, "health_check": {"enabled": False}})
        p.update(llm or {})
        rl = {"enabled": True}
        rl.update(rate or {"requests_per_minute": 600, "burst": 20})
        cfg = {"llm": p, "rate_limit": rl,
               "auth": {"enabled": True, "keys": [{"name": "team", "key": KEY, "metrics": True}]},
               "state": {"backend": "redis",
                         "redis": {"address": "127.0.0.1:%d" % self.redis.port, "prefix": prefix,
                                   "on_failure": on_failure, "command_timeout": "300ms",
                                   "connect_timeout": "300ms"}}}
        cfg.update(extra or {})
        gws = [self.start_server(cfg, name="gw%d" % i) for i in range(n)]
        for g in gws if wait_ok else ():
            self.wait_for(lambda g=g: self.health(g)[1]["state"]["status"] == "ok", what="connected to Redis")
        return gws

    def post(self, srv, body=None, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(bearer(KEY))
        h.update(headers or {})
        return srv.request("POST", "/v1/chat/completions", headers=h, body=body or chat(), timeout=20)

    def hammer(self, servers, seconds, threads=6):
        """Requests round-robin over the instances from several threads for
        `seconds`: statuses and the span between the first and last send."""
        results, lock = [], threading.Lock()
        stop_at = time.monotonic() + seconds

        def run(i):
            k = i
            while time.monotonic() < stop_at:
                t = time.monotonic()
                r = self.post(servers[k % len(servers)])
                k += 1
                with lock:
                    results.append((t, r.status, r))

        ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(seconds + 30)
        results.sort(key=lambda x: x[0])
        return results

    def health(self, srv):
        r = http_request(srv.port, "GET", "/health", headers=bearer(KEY))
        return r.status, json.loads(r.body)

    def metric(self, srv, name):
        r = http_request(srv.port, "GET", "/metrics", headers=bearer(KEY))
        for line in r.body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def wait_for(self, pred, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        self.fail("timed out waiting for " + what)


class TestClusterLimits(ScaleOutCase):
    def test_request_limit_holds_across_three_instances(self):
        # 600/min = 10/s, burst 20, through three instances for 8 s.
        gws = self.cluster()
        res = self.hammer(gws, 8.0)
        ok = [t for t, s, _ in res if s == 200]
        refused = [r for _, s, r in res if s == 429]
        self.assertEqual(len(ok) + len(refused), len(res), {s for _, s, _ in res})
        self.assertGreater(len(refused), len(ok), "the load must exceed the limit")
        span = res[-1][0] - res[0][0]
        allowed = 20 + 10.0 * span
        self.assertLessEqual(abs(len(ok) - allowed), max(1.0, 0.01 * allowed),
                             "accepted %d, the limit allows %.1f over %.2fs" % (len(ok), allowed, span))
        # Every instance served some and refused some: one shared bucket.
        by_port = {}
        for _, s, r in res:
            by_port.setdefault(s, 0)
        r = refused[-1]
        self.assertEqual(r.header("RateLimit-Limit"), "20")
        self.assertEqual(r.header("RateLimit-Remaining"), "0")
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        # The bucket lives in Redis under the prefix, with an expiry.
        self.assertIn("t:rl:r:key:team", self.redis.cli("KEYS", "t:*"))
        ttl = int(self.redis.cli("PTTL", "t:rl:r:key:team").strip())
        self.assertTrue(0 < ttl <= 3000 + 1000, ttl)

    def test_heartbeat_counts_instances(self):
        gws = self.cluster()
        st = self.wait_for(lambda: (lambda h: h if h[1]["state"]["instances"] == 3 else None)(self.health(gws[0])),
                           what="three instances in /health")
        self.assertEqual(st[0], 200)
        self.assertEqual(st[1]["state"]["status"], "ok")
        self.assertEqual(st[1]["state"]["backend"], "redis")
        self.assertEqual(self.metric(gws[1], "hapax_state_backend_up"), 1)
        self.wait_for(lambda: self.metric(gws[2], "hapax_state_instances") == 3, what="instances metric")
        # An instance that dies leaves the count within the heartbeat's TTL.
        gws[2].kill()
        gws[2].expected_exit = None
        self.wait_for(lambda: self.health(gws[0])[1]["state"]["instances"] == 2, timeout=10,
                      what="two instances after a kill")
        # Anonymous /health does not show the instance id (it holds the host name).
        r = http_request(gws[0].port, "GET", "/health")
        self.assertNotIn("instance\"", r.body.decode())


class TestClusterTokens(ScaleOutCase):
    # The tokens bucket holds one minute of tokens: 30000, refilled at 500/s.
    PER_MIN = 30000

    def level(self):
        out = self.redis.cli("HGET", "t:rl:t:key:team", "t").strip()
        return float(out) if out else None

    def redis_ms(self):
        sec, usec = self.redis.cli("TIME").split()
        return int(sec) * 1000 + int(usec) // 1000

    def test_token_limit_holds_across_instances_with_streams(self):
        gws = self.cluster(rate={"requests_per_minute": 10000000, "burst": 10000000,
                                 "tokens_per_minute": self.PER_MIN})
        bodies = [chat(max_tokens=8),
                  json.dumps({"messages": [user("hello")], "max_tokens": 8, "stream": True,
                              "stream_options": {"include_usage": True}})]
        charged, refused, lock = [0], [0], threading.Lock()
        stop_at = time.monotonic() + 8.0
        t0 = self.redis_ms()  # the bucket's clock is Redis's

        def usage_of(r, stream):
            if not stream:
                u = r.json()["usage"]
                return u["prompt_tokens"] + u["completion_tokens"]
            for line in r.body.decode().splitlines():
                if line.startswith("data: {") and '"usage":{' in line:
                    u = json.loads(line[6:])["usage"]
                    if u:
                        return u["prompt_tokens"] + u["completion_tokens"]
            self.fail("a stream without usage: %r" % r.body[-300:])

        def run(i):
            k = i
            while time.monotonic() < stop_at:
                stream = k % 2 == 1
                r = self.post(gws[k % 3], body=bodies[k % 2])
                k += 1
                with lock:
                    if r.status == 200:
                        charged[0] += usage_of(r, stream)
                    elif r.status == 429:
                        refused[0] += 1
                    else:
                        self.fail("unexpected %r" % r)

        ts = [threading.Thread(target=run, args=(i,)) for i in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        time.sleep(0.5)  # the last settlements reach Redis
        self.assertGreater(refused[0], 0, "the load must exceed the limit")
        level = self.level()
        ts = float(self.redis.cli("HGET", "t:rl:t:key:team", "ts").strip())
        # What the bucket allowed over the run: its capacity plus the
        # refill up to its last update, less what is left in it.
        allowed = self.PER_MIN + self.PER_MIN / 60.0 * (ts - t0) / 1000.0 - level
        self.assertLessEqual(abs(charged[0] - allowed), 0.01 * allowed,
                             "charged %d tokens, the limit allows %.0f (level %.0f)" % (charged[0], allowed, level))

    def test_cut_stream_is_charged_cluster_wide(self):
        # A long, slow stream cut after its first bytes is charged (its
        # prompt and what was relayed) to the shared bucket.
        self.mock = self.start_mock(args=["--chunks", "50", "--chunk-delay-ms", "50"])
        gws = self.cluster(n=1, rate={"requests_per_minute": 10000000, "burst": 10000000,
                                      "tokens_per_minute": self.PER_MIN})
        self.assertEqual(self.post(gws[0]).status, 200)
        before = self.level()
        self.assertIsNotNone(before)
        c = gws[0].conn()
        body = json.dumps({"messages": [user("x" * 4000)], "stream": True})
        c.send(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s" % (KEY, len(body), body)).encode())
        c.read_until(b"data: ", timeout=10)
        c.close()
        gws[0].wait_log(lambda x: x.get("path") == "/v1/chat/completions" and x.get("aborted") is True, timeout=10)
        time.sleep(0.2)
        after = self.level()
        # 4000 bytes of prompt are about 1000 tokens: charged although no
        # usage ever came (the refill is 500/s: a few hundred ms of it).
        self.assertLess(after, before - 500, (before, after))


class TestClusterQueue(ScaleOutCase):
    def queue_cluster(self, chunks, n=3, lease="2s"):
        self.mock = self.start_mock(args=["--chunks", str(chunks)])
        return self.cluster(n=n, fault="slow", rate={"requests_per_minute": 100000, "burst": 100000},
                            extra={"queue": {"enabled": True, "max_concurrent": 2, "initial_size": 50,
                                             "max_wait": "30s", "lease_ttl": lease}})

    def send_async(self, srv, results, i):
        def run():
            try:
                r = self.post(srv, body=chat(said="q%d" % i))
                results.append((i, r.status))
            except OSError as e:  # an instance killed under it
                results.append((i, repr(e)))
        t = threading.Thread(target=run)
        t.start()
        return t

    def watch_active(self, stop, peak):
        while not stop.is_set():
            peak[0] = max(peak[0], self.mock.stats()["active"])
            time.sleep(0.01)

    def test_max_concurrent_holds_for_the_cluster(self):
        # Each answer takes 5 x 200 ms; 9 requests over three instances,
        # two slots for all of them.
        gws = self.queue_cluster(5)
        peak, stop = [0], threading.Event()
        w = threading.Thread(target=self.watch_active, args=(stop, peak))
        w.start()
        results = []
        ts = [self.send_async(gws[i % 3], results, i) for i in range(9)]
        for t in ts:
            t.join(60)
        stop.set()
        w.join()
        self.assertEqual(sorted(s for _, s in results), [200] * 9, results)
        self.assertEqual(peak[0], 2, "at most two requests at the provider at once, cluster-wide")
        self.assertEqual(self.redis.cli("ZCARD", "t:queue").strip(), "0")  # every slot given back

    def test_dead_instance_slots_come_back_within_the_lease(self):
        # Two long answers (50 x 200 ms) hold both cluster slots through
        # instance 0; it is killed; instance 1's request gets a slot once
        # the dead instance's leases (2 s) run out, not before the kill.
        gws = self.queue_cluster(50, n=2)
        results = []
        for i in range(2):
            self.send_async(gws[0], results, i)
        self.wait_for(lambda: self.mock.stats()["active"] == 2, what="two requests at the provider")
        t = self.send_async(gws[1], results, 9)
        time.sleep(1.0)
        self.assertEqual(self.mock.stats()["requests"], 2, "the third request must wait for a slot")
        gws[0].kill()
        gws[0].expected_exit = None
        killed = time.monotonic()
        self.wait_for(lambda: self.mock.stats()["requests"] == 3, timeout=10, what="the waiting request admitted")
        waited = time.monotonic() - killed
        self.assertLess(waited, 2.0 + 1.5, "admitted %.2fs after the kill" % waited)
        gws[1].stop()
        t.join(30)


class TestSharedBreakerAndHealth(ScaleOutCase):
    def provider_state(self, srv):
        return self.health(srv)[1]["providers"]["openai"]

    def test_breaker_opened_by_one_instance_opens_on_the_others(self):
        gws = self.cluster(n=2, llm={"panic": False},
                           extra={"circuit_breaker": {"failure_threshold": 3, "min_requests": 3,
                                                      "failure_rate": 50, "timeout": "30s", "interval": "60s"}})
        self.mock.arm("500", -1)
        for _ in range(3):
            self.post(gws[0])
        self.assertEqual(self.provider_state(gws[0])["breaker"], "open")
        t = time.monotonic()
        self.wait_for(lambda: self.provider_state(gws[1])["breaker"] == "open", timeout=5,
                      what="the other instance's breaker open")
        self.assertLess(time.monotonic() - t, 1.0, "a transition reaches the others within a second")
        # Instance 1 never saw a failure itself, yet refuses without asking the provider.
        before = self.mock.stats()["requests"]
        r = self.post(gws[1])
        self.assertEqual(r.status, 503, r)
        self.assertEqual(self.mock.stats()["requests"], before)
        self.assertTrue(gws[1].wait_log(lambda x: x.get("event") == "breaker_transition" and x.get("to") == "open"))

    def test_evidence_counts_across_instances(self):
        # Three failures, one through each instance: none alone reaches
        # the threshold, together they open every breaker.
        gws = self.cluster(extra={"circuit_breaker": {"failure_threshold": 3, "min_requests": 3,
                                                      "failure_rate": 50, "timeout": "30s",
                                                      "interval": "60s"}})
        self.mock.arm("500", -1)
        for g in gws:
            self.assertEqual(self.post(g).status // 100, 5)
            time.sleep(0.4)  # the verdict batch goes out every 250 ms
        for g in gws:
            self.wait_for(lambda g=g: self.provider_state(g)["breaker"] == "open", timeout=5,
                          what="breaker open from the cluster's evidence")

    def test_health_verdict_is_shared(self):
        gws = self.cluster(n=2, llm={"health_check": {"enabled": True, "interval": "60s",
                                                      "failure_threshold": 2}})
        self.mock.stop()  # every request now fails to connect
        for _ in range(3):
            self.post(gws[0])
        self.wait_for(lambda: self.provider_state(gws[0])["status"] != "up", timeout=5, what="unhealthy on 0")
        self.wait_for(lambda: self.provider_state(gws[1])["status"] != "up", timeout=2, what="unhealthy on 1")
        self.assertTrue(gws[1].wait_log(lambda x: x.get("event") == "provider_health" and x.get("source") == "cluster"))


class TestSharedResponses(ScaleOutCase):
    def test_stored_response_is_seen_by_every_instance(self):
        gws = self.cluster(n=2, extra={"auth": {"enabled": True, "keys": [
            {"name": "team", "key": KEY, "metrics": True}, {"name": "other", "key": "hx-other"}]}})
        h = {"Content-Type": "application/json"}
        h.update(bearer(KEY))
        r = gws[0].request("POST", "/v1/responses", headers=h,
                           body=json.dumps({"model": "gpt-test", "input": "remember me"}), timeout=20)
        self.assertEqual(r.status, 200, r)
        d = r.json()
        g = gws[1].request("GET", "/v1/responses/" + d["id"], headers=bearer(KEY))
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json(), d)
        # another key does not see it, on any instance
        self.assertEqual(gws[1].request("GET", "/v1/responses/" + d["id"], headers=bearer("hx-other")).status, 404)
        # previous_response_id through the other instance
        r2 = gws[1].request("POST", "/v1/responses", headers=h,
                            body=json.dumps({"model": "gpt-test", "input": "again", "previous_response_id": d["id"]}),
                            timeout=20)
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(self.mock.last()["body"]["messages"][0]["content"], "remember me")
        # kept in Redis under the prefix, with the configured expiry
        ttl = int(self.redis.cli("PTTL", "t:resp:" + d["id"]).strip())
        self.assertGreater(ttl, 0)
        x = gws[1].request("DELETE", "/v1/responses/" + d["id"], headers=bearer(KEY))
        self.assertEqual(x.status, 200, x)
        self.assertEqual(gws[0].request("GET", "/v1/responses/" + d["id"], headers=bearer(KEY)).status, 404)

    def test_store_down_answers_503_not_someone_elses_data(self):
        gws = self.cluster(n=1)
        self.redis.stop()
        self.wait_for(lambda: self.health(gws[0])[1]["state"]["status"] == "degraded", what="degraded")
        g = gws[0].request("GET", "/v1/responses/resp_abc", headers=bearer(KEY))
        self.assertEqual(g.status, 503, g)


class TestGrants(ScaleOutCase):
    """Far from its limit a worker takes several requests at once from the
    shared bucket (a grant) and admits them without asking Redis; what it
    does not use goes back; near the limit every request asks."""

    def level(self):
        out = self.redis.cli("HGET", "t:rl:r:key:team", "t").strip()
        return float(out) if out else None

    def test_unused_grant_goes_back(self):
        gws = self.cluster(n=1, rate={"requests_per_minute": 60, "burst": 100000})
        c = gws[0].conn()
        for _ in range(2):  # one connection: one worker, so the second request finds the first's view
            c.send(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s" % (KEY, len(chat()), chat())).encode())
            self.assertEqual(c.read_response("POST").status, 200)
        taken = 100000 - self.level()
        self.assertGreater(taken, 10, "the second take reserved a grant (%.1f taken)" % taken)
        # 100 ms unused: the grant goes back, the bucket shows the two requests
        self.wait_for(lambda: 100000 - self.level() < 3, timeout=3, what="the grant given back")

    def test_grants_never_admit_past_the_limit(self):
        # 1200 in the bucket, 1 a second: grants form while it is full and
        # shrink to single requests as it empties; three instances hammer it.
        gws = self.cluster(rate={"requests_per_minute": 60, "burst": 1200})
        res = self.hammer(gws, 4.0, threads=8)
        ok = sum(1 for _, st, _ in res if st == 200)
        span = res[-1][0] - res[0][0]
        allowed = 1200 + span
        self.assertGreater(len(res) - ok, 0, "the load must exceed the limit")
        self.assertLessEqual(ok, allowed + 1, "admitted %d, the limit allows %.1f" % (ok, allowed))
        self.assertGreaterEqual(ok, 0.99 * allowed - 1, "admitted %d of %.1f" % (ok, allowed))


class TestRedisFailure(ScaleOutCase):
    def test_local_fallback_then_recovery(self):
        gws = self.cluster(rate={"requests_per_minute": 60, "burst": 30})
        self.wait_for(lambda: self.health(gws[0])[1]["state"]["instances"] == 3, what="three instances")
        self.redis.stop()
        # Each instance now limits alone with a third of the limit: 10 of
        # the burst, whatever Redis said before.
        for g in gws:
            self.wait_for(lambda g=g: self.health(g)[1]["state"]["status"] == "degraded", what="degraded")
        st, h = self.health(gws[0])
        self.assertEqual((st, h["status"]), (200, "degraded"))
        self.assertEqual(self.metric(gws[0], "hapax_state_backend_up"), 0)
        statuses = [self.post(gws[0]).status for _ in range(14)]
        self.assertEqual(statuses.count(200), 10, statuses)
        self.assertEqual(statuses.count(429), 4, statuses)
        self.assertGreaterEqual(self.metric(gws[0], "hapax_state_fallbacks_total{action=\"local\"}") or
                                self.metric(gws[0], "hapax_state_fallbacks_total"), 10)
        rec = gws[0].wait_log(lambda x: x.get("event") == "state_backend_degraded")
        self.assertEqual(rec.get("on_failure"), "local")
        # Back: recovery is logged and the shared bucket decides again.
        self.redis.start()
        for g in gws:
            self.assertTrue(g.wait_log(lambda x: x.get("event") == "state_backend_recovered", timeout=15))
        self.assertEqual(self.health(gws[1])[1]["state"]["status"], "ok")
        statuses = [self.post(gws[i % 3]).status for i in range(33)]
        self.assertEqual(statuses.count(200), 30, statuses)  # a fresh Redis: the full burst, once
        for g in gws:
            self.assertTrue(g.alive())

    def test_deny_answers_503_while_redis_is_down(self):
        gws = self.cluster(n=1, on_failure="deny")
        self.assertEqual(self.post(gws[0]).status, 200)
        self.redis.stop()
        self.wait_for(lambda: self.health(gws[0])[1]["state"]["status"] == "degraded", what="degraded")
        r = self.post(gws[0])
        self.assertJsonError(r, 503, "service_unavailable")
        self.assertEqual(r.header("Retry-After"), "1")
        self.assertEqual(self.mock.stats()["requests"], 1)  # the denied one never reached it
        # /health itself is not limited and answers.
        self.assertEqual(self.health(gws[0])[0], 200)

    def test_stopped_redis_does_not_stall_requests(self):
        # A Redis that stops answering (SIGSTOP): the command deadline
        # (300 ms) answers and the fallback serves; nothing hangs.
        gws = self.cluster(n=1)
        self.assertEqual(self.post(gws[0]).status, 200)
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        try:
            for _ in range(3):
                t = time.monotonic()
                r = self.post(gws[0])
                self.assertEqual(r.status, 200)
                self.assertLess(time.monotonic() - t, 5.0)
            # the connection stays down while Redis does not answer
            self.assertTrue(gws[0].wait_log(lambda x: x.get("event") == "state_backend_degraded", timeout=10))
        finally:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        self.assertTrue(gws[0].wait_log(lambda x: x.get("event") == "state_backend_recovered", timeout=15))


class TestSentinel(ScaleOutCase):
    """state.redis.sentinel: the primary is asked of Sentinel, and a
    failover (the primary killed, its replica promoted) is followed."""

    def start_sentinel(self):
        self.replica = Redis(self.workdir, extra=["--replicaof", "127.0.0.1", str(self.redis.port)]).start()
        self.addCleanup(self.replica.stop)
        self.sentinel_port = free_port()
        conf = os.path.join(self.workdir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                    "sentinel monitor gw 127.0.0.1 %d 1\n"
                    "sentinel down-after-milliseconds gw 500\n"
                    "sentinel failover-timeout gw 3000\n" % (self.sentinel_port, self.workdir, self.redis.port))
        proc = subprocess.Popen([REDIS, conf, "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (proc.kill(), proc.wait(5)))
        self.wait_for(lambda: self.sentinel("SENTINEL", "replicas", "gw").strip(), timeout=15,
                      what="the sentinel to see the replica")

    def sentinel(self, *args):
        try:
            return subprocess.run(["redis-cli", "-p", str(self.sentinel_port)] + list(args), capture_output=True,
                                  text=True, timeout=5).stdout
        except subprocess.TimeoutExpired:
            return ""

    def test_failover_is_followed(self):
        self.start_sentinel()
        gws = self.cluster(n=1, rate={"requests_per_minute": 600000, "burst": 100000}, extra={"state": {
            "backend": "redis", "redis": {"address": "127.0.0.1:1", "prefix": "t:", "command_timeout": "300ms",
                                          "connect_timeout": "300ms",
                                          "sentinel": {"master_name": "gw",
                                                       "addresses": ["127.0.0.1:%d" % self.sentinel_port]}}}})
        self.assertEqual(self.post(gws[0]).status, 200)
        self.assertIn("t:rl:r:key:team", self.redis.cli("KEYS", "t:*"))  # through Sentinel, not `address`
        self.redis.stop()  # the primary dies; Sentinel promotes the replica
        self.wait_for(lambda: str(self.replica.port) in self.sentinel("SENTINEL", "get-master-addr-by-name", "gw"),
                      timeout=30, what="the failover")
        self.assertTrue(gws[0].wait_log(lambda x: x.get("event") == "state_backend_recovered", timeout=15))
        self.wait_for(lambda: self.post(gws[0]).status == 200 and
                      "t:rl:r:key:team" in self.replica.cli("KEYS", "t:*"), timeout=10,
                      what="the limits on the new primary")
        self.assertEqual(self.health(gws[0])[1]["state"]["status"], "ok")


class TestRedisTls(ScaleOutCase):
    """state.redis.tls: Redis's TLS port, a client certificate (Redis's
    tls-auth-clients), the server's certificate checked."""

    def setUp(self):
        HapaxTestCase.setUp(self)
        self.certs = os.path.join(self.workdir, "certs")
        subprocess.run(["sh", os.path.join(os.path.dirname(__file__), "..", "certs", "gen.sh"), self.certs],
                       check=True)
        c = lambda n: os.path.join(self.certs, n)
        self.redis = Redis(self.workdir, extra=[
            "--tls-port", "0", "--tls-cert-file", c("server.pem"), "--tls-key-file", c("server.key"),
            "--tls-ca-cert-file", c("ca.pem"), "--tls-auth-clients", "yes"])
        self.tls_port = free_port()
        self.redis.extra[1] = str(self.tls_port)
        self.redis.start()
        self.addCleanup(self.redis.stop)

    def tls_cfg(self, name="a.test"):
        c = lambda n: os.path.join(self.certs, n)
        return {"state": {"backend": "redis", "redis": {
            "address": "127.0.0.1:%d" % self.tls_port, "prefix": "t:", "tls": True, "tls_ca_file": c("ca.pem"),
            "tls_server_name": name, "tls_cert_file": c("client.pem"), "tls_key_file": c("client.key"),
            # a TLS handshake and the set-up must fit the connect deadline, also on a loaded machine
            "connect_timeout": "2s", "command_timeout": "2s"}}}

    def test_limits_over_tls(self):
        gws = self.cluster(n=1, rate={"requests_per_minute": 60, "burst": 2}, extra=self.tls_cfg())
        self.assertEqual([self.post(gws[0]).status for _ in range(3)], [200, 200, 429])
        self.assertIn("t:rl:r:key:team", self.redis.cli("KEYS", "t:*"))  # the plain port of the same server
        self.assertEqual(self.health(gws[0])[1]["state"]["status"], "ok")

    def test_large_values_cross_the_relay(self):
        # A stored response of ~200 KB: many TLS records each way.
        gws = self.cluster(n=1, extra=self.tls_cfg())
        h = {"Content-Type": "application/json"}
        h.update(bearer(KEY))
        big = "x" * 200000
        r = gws[0].request("POST", "/v1/responses", headers=h,
                           body=json.dumps({"model": "gpt-test", "input": big}), timeout=20)
        self.assertEqual(r.status, 200, r)
        got = self.wait_for(lambda: (lambda g: g if g.status == 200 else None)(
            gws[0].request("GET", "/v1/responses/" + r.json()["id"], headers=bearer(KEY))), what="the stored response")
        self.assertEqual(got.json(), r.json())
        self.assertEqual(self.post(gws[0]).status, 200)  # the connection still works after them
        self.assertEqual(self.health(gws[0])[1]["state"]["status"], "ok")

    def test_wrong_server_name_is_refused(self):
        gws = self.cluster(n=1, extra=self.tls_cfg(name="c.test"), wait_ok=False)
        self.wait_for(lambda: self.health(gws[0])[1]["state"]["status"] == "degraded", what="degraded")
        self.assertEqual(self.redis.cli("KEYS", "t:*").strip(), "")
        self.assertEqual(self.post(gws[0]).status, 200)  # on_failure local


class TestConfig(ScaleOutCase):
    def test_config_errors_are_named(self):
        base = {"state": {"backend": "redis", "redis": {"address": "nohost:"}}}
        r = self.cli(["--validate", "--config", self.write_file("a.yaml", json.dumps(base))])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("state.redis.address", r.stdout + r.stderr)
        base["state"]["redis"] = {"address": "127.0.0.1:6379", "tls": True, "tls_ca_file": "/nonexistent.pem"}
        r = self.cli(["--validate", "--config", self.write_file("b.yaml", json.dumps(base))])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("state.redis.tls_ca_file", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
