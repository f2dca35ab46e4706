"""A flufl.lock peer for racelab's interop test (crates/racelab/tests/it/lockfile.rs).

Real flufl.lock from PyPI. Only two things are adjusted, both through flufl.lock's own seams:
the clock slop (a module constant, 10 s) so that expiry cases take seconds, and _sleep() (a
method, "random.random() * 2.0 + 0.01" seconds) so that contention rounds take milliseconds.
The algorithm -- claim file, link, nlink == 2, mtime expiry, _break -- is untouched.
"""
import os
import random
import sys
import time
from datetime import timedelta

import flufl.lock._lockfile as lf
from flufl.lock import Lock, NotLockedError, TimeOutError


class FastLock(Lock):
    def _sleep(self):
        time.sleep(random.random() * 0.002 + 0.0002)


def bump(counter):
    with open(counter) as f:
        n = int(f.read().strip())
    with open(counter, "w") as f:
        f.write(f"{n + 1}\n")


def main():
    mode, lockfile = sys.argv[1], sys.argv[2]
    slop = float(os.environ.get("FLUFL_SLOP", "10"))
    lf.CLOCK_SLOP = timedelta(seconds=slop)
    if mode == "contend":
        counter, iters = sys.argv[3], int(sys.argv[4])
        lock = FastLock(lockfile)
        for _ in range(iters):
            lock.lock()
            bump(counter)
            lock.unlock()
        print("done", flush=True)
    elif mode == "hold":
        lifetime, seconds = float(sys.argv[3]), float(sys.argv[4])
        lock = FastLock(lockfile, lifetime=timedelta(seconds=lifetime))
        lock.lock()
        print("locked", lock.claimfile, flush=True)
        time.sleep(seconds)
        try:
            lock.unlock()
            print("unlocked", flush=True)
        except NotLockedError:
            print("NotLockedError", flush=True)
    elif mode == "crash":
        lifetime = float(sys.argv[3])
        lock = FastLock(lockfile, lifetime=timedelta(seconds=lifetime))
        lock.lock()
        print("locked", lock.claimfile, flush=True)
        os._exit(0)  # dies holding the lock: no unlock, no finaliser
    elif mode == "timeout":
        timeout = float(sys.argv[3])
        lock = FastLock(lockfile)
        start = time.monotonic()
        try:
            lock.lock(timeout=timedelta(seconds=timeout))
            print("locked", flush=True)
            lock.unlock()
        except TimeOutError:
            print(f"timeout {time.monotonic() - start:.3f}", flush=True)
    elif mode == "acquire":
        lifetime = float(sys.argv[3])
        lock = FastLock(lockfile, lifetime=timedelta(seconds=lifetime))
        start = time.monotonic()
        lock.lock(timeout=timedelta(seconds=60))
        print(f"locked {time.monotonic() - start:.3f} {lock.claimfile}", flush=True)
        lock.unlock()
        print("unlocked", flush=True)
    elif mode == "bench":
        iters = int(sys.argv[3])
        lock = Lock(lockfile)  # flufl.lock exactly as shipped; uncontended, so it never sleeps
        start = time.perf_counter()
        for _ in range(iters):
            lock.lock()
            lock.unlock()
        elapsed = time.perf_counter() - start
        print(f"{iters / elapsed:.1f}", flush=True)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
