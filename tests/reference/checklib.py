"""checklib.py: the few assertion helpers the reference's self-tests share.
Each failed check prints one FAIL line and is counted; run_tests prints the
`N passed, N failed` totals and returns the exit code (0 pass, 1 fail)."""

import traceback

import numpy as np

_failures = []


def check(cond, what):
    if not cond:
        _failures.append(what)
        print(f"FAIL {what}")
    return bool(cond)


def close(got, want, tol, what):
    """Elementwise |got - want| <= tol (tol 0 means exactly equal)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    ok = got.shape == want.shape and bool(np.all(np.abs(got - want) <= tol))
    return check(ok, f"{what}: got {got.ravel()[:8]} want {want.ravel()[:8]}")


def run_tests(tests):
    """Run each test function; a test fails if any check in it fails or it
    raises. Prints one line per test and the totals."""
    passed = failed = 0
    for t in tests:
        before = len(_failures)
        try:
            t()
        except Exception:  # a crash in a test is a failure, not an abort
            traceback.print_exc()
            _failures.append(t.__name__)
        if len(_failures) == before:
            passed += 1
            print(f"ok   {t.__name__}")
        else:
            failed += 1
            print(f"FAIL {t.__name__}")
    print(f"selftest: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1
