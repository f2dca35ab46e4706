"""One locker of scenarios/filelock.race: the real filelock, unmodified, under racelab's gate.

Usage: filelock_driver.py VERSION LOCKFILE COUNTER WORK_SECONDS, paths as the scenario names
them; racelab sets RACELAB_ROOT (the run's real root) and RACELAB_ACTOR (this actor's name).
VERSION is a filelock release `cargo xtask venv` installed into $VENV/filelock/VERSION (one
directory per release: one site-packages holds one version); the venv is this python's prefix.

It locks with UnixFileLock (what FileLock is on Linux), enters the critical section, reads the
counter file, works, writes the counter plus one, leaves and unlocks, as the scenario's actor
does. Two conventions let racelab read the scenario's invariants off the real files: a file in
$ROOT/.racelab/critical/app/ named after the actor while it holds the lock (holders(app)), and
one line per increment in $ROOT/.racelab/logs/done (count(done)).
"""

import os
import sys

from gate_driver import counted_section, load_release

version = sys.argv[1]
load_release("filelock", version, "filelock/_unix.py")

import filelock  # noqa: E402
from filelock import UnixFileLock  # noqa: E402

if filelock.__version__ != version:
    sys.exit(f"imported filelock {filelock.__version__} from {filelock.__file__}, not {version}")

root = os.environ["RACELAB_ROOT"]
me = os.environ["RACELAB_ACTOR"]
lockfile, counter = root + sys.argv[2], root + sys.argv[3]

lock = UnixFileLock(lockfile)  # no timeout, poll_interval 0.05 s
lock.acquire()
counted_section(root, me, "app", counter, float(sys.argv[4]))
lock.release()
