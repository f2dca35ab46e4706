"""One locker of scenarios/portalocker.race: the real portalocker, unmodified, under racelab's gate.

Usage: portalocker_driver.py VERSION LOCKFILE COUNTER WORK_SECONDS TRIER LATE_SECONDS, paths as
the scenario names them; racelab sets RACELAB_ROOT (the run's real root) and RACELAB_ACTOR.
VERSION is a portalocker release `cargo xtask venv` installed into $VENV/portalocker/VERSION
(one directory per release); the venv is this python's prefix.

Every actor makes a TemporaryFileLock on LOCKFILE. The actor named TRIER ("none": nobody) keeps
TemporaryFileLock's defaults (fail_when_locked=True): when the lock is taken it gets
AlreadyLocked, says so and exits normally, so the interpreter runs the atexit release the lock
registered, as any program using the defaults does. The others wait (fail_when_locked=False,
timeout 60 s). locker3 first sleeps LATE_SECONDS (the newcomer). A holder marks the critical
section ($ROOT/.racelab/critical/app/ACTOR), reads the counter, works, writes it plus one, logs
the increment ($ROOT/.racelab/logs/done), unmarks and releases, as the scenario's actor does.
"""

import os
import sys
import time

from gate_driver import counted_section, load_release

version, lock_arg, counter_arg, work, trier, late = sys.argv[1:7]
load_release("portalocker", version, "portalocker/utils.py")

import portalocker  # noqa: E402

if portalocker.__version__ != version:
    sys.exit(f"imported portalocker {portalocker.__version__} from {portalocker.__file__}, not {version}")

root = os.environ["RACELAB_ROOT"]
me = os.environ["RACELAB_ACTOR"]
lockfile, counter = root + lock_arg, root + counter_arg

if me == "locker3":
    time.sleep(float(late))
if me == trier:
    lock = portalocker.TemporaryFileLock(lockfile)
else:
    lock = portalocker.TemporaryFileLock(lockfile, timeout=60, fail_when_locked=False)
try:
    lock.acquire()
except portalocker.AlreadyLocked:
    print(f"{me}: {lockfile} is locked, giving up", file=sys.stderr)
    sys.exit(0)  # atexit runs the lock's release
counted_section(root, me, "app", counter, float(work))
lock.release()
