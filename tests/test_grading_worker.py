"""math-verify under a hard limit: a worker process, killed on timeout, reused across calls.

The pathological answer below passes the cost screen and makes sympy compute a 40 MB integer
inside one CPython `pow` call; from a non-main thread the in-process guard cannot stop it (the
call holds the GIL), which the first test shows in a subprocess."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from mrt_engine.grading import TIMEOUT, CORRECT, Grade, grade, is_equiv, num_workers, shutdown_workers, too_costly
from mrt_engine.grading import worker

HANG = r"(9^{99999})^{999}"


@pytest.fixture(autouse=True, scope="module")
def _no_workers_left():
    yield
    shutdown_workers()
    assert num_workers() == 0


def _pids():
    return sorted(w.proc.pid for w in worker._idle)


def test_the_pathological_answer_hangs_the_in_process_guard():
    assert not too_costly(HANG)  # the screen misses it: only the worker's kill can stop it
    code = textwrap.dedent(f"""
        import threading
        from mrt_engine.grading import run_with_timeout, AnswerCheckTimeout
        from mrt_engine.grading._child import compare
        compare("3", "2")  # imports and caches warm: the 3 s below go to the check itself
        out = []
        def check():
            try:
                out.append(run_with_timeout(lambda: compare("3", {HANG!r}), 3.0))
            except AnswerCheckTimeout:
                out.append("timeout")
        t = threading.Thread(target=check)
        t.start()
        t.join()
        print(out)
    """)
    with pytest.raises(subprocess.TimeoutExpired):  # a 3 s limit that still runs at 20 s
        subprocess.run([sys.executable, "-c", code], timeout=20, capture_output=True)


@pytest.mark.parametrize("in_thread", [False, True])
def test_the_worker_kills_a_hung_check(in_thread):
    assert grade(r"\boxed{1/2}", "0.5").reason == CORRECT  # start a worker outside the timing
    before = _pids()
    out = []
    t0 = time.perf_counter()
    if in_thread:
        th = threading.Thread(target=lambda: out.append(grade(r"\boxed{" + HANG + "}", "3", timeout=1.0)))
        th.start()
        th.join(30)
    else:
        out.append(grade(r"\boxed{" + HANG + "}", "3", timeout=1.0))
    assert time.perf_counter() - t0 < 5.0
    assert out == [Grade(0.0, TIMEOUT, HANG)]
    assert not set(before) & set(_pids())  # the hung worker is gone...
    assert is_equiv("2", "4/2")  # ...and the next check starts a new one
    assert num_workers() == 1


def test_workers_are_reused_and_shut_down():
    shutdown_workers()
    assert grade(r"\boxed{\frac{1}{2}}", "0.5").reason == CORRECT
    first = _pids()
    assert grade(r"\boxed{x+1}", "1+x").reason == CORRECT
    assert is_equiv(r"\sqrt{8}", r"2\sqrt{2}")
    assert _pids() == first and len(first) == 1  # one worker, reused
    procs = [w.proc for w in worker._idle]
    shutdown_workers()
    assert num_workers() == 0 and all(p.poll() is not None for p in procs)


def test_fast_paths_stay_in_process():
    shutdown_workers()
    assert grade(r"\boxed{12}", "12").reason == CORRECT  # equal strings: no sympy
    assert grade(r"\boxed{13}", "12", verifier=lambda a, b: a == b).score == 0.0
    assert grade(r"\boxed{9^{9^{9^9}}}", "3").reason == "too costly to check"
    assert num_workers() == 0


def test_no_worker_outlives_its_parent(tmp_path):
    code = ("from mrt_engine.grading import grade, worker\n"
            "assert grade(r'\\boxed{1/2}', '0.5').correct\n"
            "print(worker._idle[0].proc.pid)\n")
    pid = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             timeout=120).stdout.split()[-1])
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"grading worker {pid} still running after its parent exited")
