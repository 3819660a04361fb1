#!/usr/bin/python3
"""Runs the hapax integration tests against a built binary.

    python3 tests/integration/run.py --bin build/hapax [-k PATTERN]... [-v]
                                     [-j N] [--artifacts DIR] [--failfast] [--list]

-k selects tests whose id (e.g. test_http.HealthTest.test_head) contains
PATTERN, or matches it as a shell glob when it has * ? or [. Repeat -k to
select the union. Exit status: 0 all passed, 1 a test failed, 2 usage error
(no binary, nothing selected).

-j N runs the tests in N worker processes (forked after discovery; each
takes the next test as it finishes one, slowest-known first), which pays
off because most of a test's time is spent waiting on its children. Every
test starts its own servers on free ports in its own directory, so the
order does not matter.

Each test writes its config and the child's stderr/stdout under the
artifacts directory (a fresh temp dir unless --artifacts is given); the
directory is removed when everything passed, kept (and printed) otherwise.
"""

import argparse
import faulthandler
import fnmatch
import io
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

# Whole-suite safety net: every wait in the tests is bounded, but should
# something still block, dump the stacks and exit instead of hanging CI.
# Children die with the runner (PR_SET_PDEATHSIG).
SUITE_LIMIT_S = 900


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def selected(test_id, patterns):
    if not patterns:
        return True
    for p in patterns:
        if any(ch in p for ch in "*?["):
            if fnmatch.fnmatchcase(test_id, p) or fnmatch.fnmatchcase(test_id, "*" + p + "*"):
                return True
        elif p in test_id:
            return True
    return False


class TimedResult(unittest.TextTestResult):
    """Records each test's wall time for the summary."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.durations = []
        self._t0 = {}

    def startTest(self, test):
        self._t0[test.id()] = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        t0 = self._t0.pop(test.id(), None)
        if t0 is not None:
            self.durations.append((time.monotonic() - t0, test.id()))


def scan_for_secrets(root):
    """Every test secret (provider keys, client keys) against every log
    the children wrote during the whole run: [(file, secret)] found."""
    secrets = set(harness.TEST_SECRETS)
    mod = sys.modules.get("test_providers")
    if mod is not None:
        secrets.update(v for v in getattr(mod, "KEYS", {}).values() if v)
    found = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            if not name.endswith((".stderr", ".stdout")):
                continue
            path = os.path.join(dirpath, name)
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            found.extend((path, s) for s in secrets if s in text)
    return found


# -- -j N: a pool of forked workers, one test at a time each

_TESTS = []     # the selected tests; set before the workers fork


def _worker_init():
    # A worker dies with the runner (and its hapax children with it); a
    # worker stuck in a test dumps its stacks and exits instead of hanging.
    harness._die_with_parent()
    faulthandler.dump_traceback_later(SUITE_LIMIT_S, exit=True)


def _run_one(index):
    """Runs _TESTS[index] in a worker; returns what the runner reports."""
    test = _TESTS[index]
    result = TimedResult(io.StringIO(), True, 0)
    unittest.TestSuite([test]).run(result)

    def described(pairs):
        # (id a failed subTest counts for, description, traceback)
        return [(getattr(t, "test_case", t).id(), str(t), tb) for t, tb in pairs]
    return {
        "id": test.id(),
        "run": result.testsRun,
        "failures": described(result.failures),
        "errors": described(result.errors),
        "unexpected": [t.id() for t in result.unexpectedSuccesses],
        "skipped": len(result.skipped),
        "durations": result.durations,
    }


def run_parallel(tests, jobs, verbose, failfast):
    """Runs `tests` in `jobs` workers, printing unittest-style progress and
    tracebacks; returns (run, failed_ids, skipped, durations)."""
    global _TESTS
    _TESTS = tests
    run, skipped, durations, failed_ids, problems = 0, 0, [], [], []
    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(jobs, initializer=_worker_init)
    faulthandler.dump_traceback_later(SUITE_LIMIT_S, exit=True)
    try:
        for rep in pool.imap_unordered(_run_one, range(len(tests)), chunksize=1):
            run += rep["run"]
            skipped += rep["skipped"]
            durations.extend(rep["durations"])
            bad = [("FAIL", f) for f in rep["failures"]] + [("ERROR", e) for e in rep["errors"]]
            problems.extend(bad)
            for tid in [b[1][0] for b in bad] + rep["unexpected"]:
                if tid not in failed_ids:
                    failed_ids.append(tid)
            if verbose:
                word = ("FAIL" if rep["failures"] else "ERROR" if rep["errors"]
                        else "unexpected success" if rep["unexpected"]
                        else "skipped" if rep["skipped"] else "ok")
                took = sum(d for d, _ in rep["durations"])
                print("%s ... %s (%.1fs)" % (rep["id"], word, took), flush=True)
            else:
                mark = ("F" if rep["failures"] else "E" if rep["errors"] else "u" if rep["unexpected"]
                        else "s" if rep["skipped"] else ".")
                sys.stdout.write(mark)
                sys.stdout.flush()
            if failfast and failed_ids:
                break
    finally:
        faulthandler.cancel_dump_traceback_later()
        pool.terminate()
        pool.join()
    print()
    for kind, (_, desc, tb) in problems:
        print("=" * 70)
        print("%s: %s" % (kind, desc))
        print("-" * 70)
        print(tb)
    print("-" * 70)
    print("Ran %d tests in %d workers" % (run, jobs))
    return run, failed_ids, skipped, durations


def run_serial(tests, verbose, failfast):
    """The same, in this process, with unittest's own runner."""
    suite = unittest.TestSuite(tests)
    faulthandler.dump_traceback_later(SUITE_LIMIT_S, exit=True)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2 if verbose else 1,
                                     failfast=failfast, resultclass=TimedResult)
    result = runner.run(suite)
    faulthandler.cancel_dump_traceback_later()
    failed_ids = []
    for t in [f[0] for f in result.failures + result.errors] + result.unexpectedSuccesses:
        tid = getattr(t, "test_case", t).id()   # a failed subTest counts for its test
        if tid not in failed_ids:
            failed_ids.append(tid)
    return result.testsRun, failed_ids, len(result.skipped), result.durations


def main():
    ap = argparse.ArgumentParser(description="hapax integration tests")
    ap.add_argument("--bin", default=os.path.join(harness.REPO_ROOT, "build", "hapax"),
                    help="path to the hapax binary (default: build/hapax)")
    ap.add_argument("-k", action="append", default=[], metavar="PATTERN",
                    help="only tests whose id contains PATTERN (or matches the glob)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per test")
    ap.add_argument("--artifacts", help="keep configs and child logs here")
    ap.add_argument("--failfast", action="store_true", help="stop at the first failure")
    ap.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                    help="run the tests in N worker processes (default 1: in this process)")
    ap.add_argument("--slowest", type=int, default=None, metavar="N",
                    help="list the N slowest tests at the end (default 8 with -v)")
    ap.add_argument("--list", action="store_true", help="list the selected tests and exit")
    args = ap.parse_args()

    binary = os.path.abspath(args.bin)
    if not args.list and not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print("run.py: binary not found or not executable: %s" % binary, file=sys.stderr)
        return 2
    harness.BIN = binary
    os.environ["HAPAX_BIN"] = binary

    keep = args.artifacts is not None
    artifacts = os.path.abspath(args.artifacts) if keep else tempfile.mkdtemp(prefix="hapax-it-")
    os.makedirs(artifacts, exist_ok=True)
    harness.ARTIFACTS = artifacts
    os.environ["HAPAX_IT_ARTIFACTS"] = artifacts

    loader = unittest.TestLoader()
    discovered = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    tests = []
    for t in iter_tests(discovered):
        # Import errors surface as _FailedTest; always keep those.
        if type(t).__name__ == "_FailedTest" or selected(t.id(), args.k):
            tests.append(t)
    if args.list:
        for t in tests:
            print(t.id())
        return 0
    if not tests:
        print("run.py: no test matches %s" % " ".join(args.k), file=sys.stderr)
        return 2

    start = time.monotonic()
    if args.jobs > 1:
        run, failed_ids, skipped, durations = run_parallel(tests, args.jobs, args.verbose,
                                                           args.failfast)
    else:
        run, failed_ids, skipped, durations = run_serial(tests, args.verbose, args.failfast)
    elapsed = time.monotonic() - start

    leaks = scan_for_secrets(artifacts)
    for path, secret in leaks:
        print("SECRET LEAK: %s contains the test secret %s..." % (path, secret[:6]))

    # Above the summary, so that the summary and the failed tests end the output.
    slowest = args.slowest if args.slowest is not None else 8 if args.verbose else 0
    if slowest > 0:
        print()
        print("slowest tests:")
        for d, tid in sorted(durations, reverse=True)[:slowest]:
            print("  %6.2fs %s" % (d, tid))
    print()
    print("=" * 70)
    print("hapax integration: %d run, %d passed, %d failed, %d skipped in %.1fs"
          % (run, run - len(failed_ids) - skipped, len(failed_ids), skipped, elapsed))
    print("binary: %s" % binary)
    for tid in failed_ids:
        print("  FAILED %s" % tid)
    ok = not failed_ids and not leaks
    if ok and not keep:
        shutil.rmtree(artifacts, ignore_errors=True)
    else:
        print("artifacts (configs, child stderr): %s" % artifacts)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
