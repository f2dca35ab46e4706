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

version, lock_arg, counter_arg, work, trier, late = sys.argv[1:7]
site = os.path.join(sys.prefix, "portalocker", version)
if not os.path.isfile(os.path.join(site, "portalocker", "utils.py")):
    missing = site + ".missing"
    reason = open(missing).read().strip() if os.path.exists(missing) else "not installed"
    sys.exit(f"portalocker {version} is not in {site}: {reason} (run `cargo xtask venv`)")
sys.path.insert(0, site)

import portalocker  # noqa: E402

if portalocker.__version__ != version:
    sys.exit(f"imported portalocker {portalocker.__version__} from {portalocker.__file__}, not {version}")

root = os.environ["RACELAB_ROOT"]
me = os.environ["RACELAB_ACTOR"]
lockfile, counter = root + lock_arg, root + counter_arg
marker = f"{root}/.racelab/critical/app/{me}"

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
open(marker, "w").close()
with open(counter) as f:
    n = int(f.read() or 0)
time.sleep(float(work))
with open(counter, "w") as f:
    f.write(str(n + 1))
with open(f"{root}/.racelab/logs/done", "a") as f:
    f.write(me + "\n")
os.unlink(marker)
lock.release()
