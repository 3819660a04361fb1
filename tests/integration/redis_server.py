"""A private redis-server for the tests that need one (test_scaleout.py,
test_cache.py, test_http3.py): a free port, no persistence, stopped by the
test that started it."""

import shutil
import subprocess
import time

from harness import free_port

REDIS = shutil.which("redis-server")


class Redis:
    """redis-server on a free port, no persistence, no protected mode."""

    def __init__(self, workdir, extra=()):
        self.port = free_port()
        self.workdir = workdir
        self.extra = list(extra)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir, "--protected-mode", "no", "--loglevel", "warning"] + self.extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.cli("PING").strip() == "PONG":
                return self
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def cli(self, *args):
        try:
            return subprocess.run(["redis-cli", "-p", str(self.port)] + list(args), capture_output=True,
                                  text=True, timeout=5).stdout
        except subprocess.TimeoutExpired:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

