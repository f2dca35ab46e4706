"""One conda process of scenarios/conda-lock.race: conda's own lock module, unmodified, under racelab's gate.

Usage: conda_lock_driver.py VERSION PKGS COUNTER WORK_SECONDS LATER_SECONDS, paths as the
scenario names them; racelab sets RACELAB_ROOT (the run's real root) and RACELAB_ACTOR.
VERSION is a conda release `cargo xtask venv` installed into $VENV/conda/VERSION (one
directory per release, `pip install --no-deps --target`); the venv is this python's prefix.

What is loaded: `import conda.lock` from that directory, the normal way: conda/__init__.py runs
(4.1.6: metadata only; 4.2.7: conda.compat and conda.gateways.logging too) and conda/lock.py
imports what it imports (4.2.7: conda.compat, conda.exceptions; its __exit__ imports
conda.common.disk). Nothing is patched, and nothing else of conda (its CLI, its solver, its
dependencies) is imported: the lock module does not need them.

The process takes `Locked(PKGS)` (4.1.6's Locked; 4.2.7's Locked = DirectoryLock) as conda
does around its package cache, marks the critical section ($ROOT/.racelab/critical/pkgs/ACTOR),
reads the counter, works, writes it plus one, logs the increment ($ROOT/.racelab/logs/done) and
unmarks, inside the `with`. conda2 first sleeps LATER_SECONDS (a later run).
"""

import contextlib
import os
import sys
import time

from gate_driver import counted_section, load_release

version, pkgs_arg, counter_arg, work, later = sys.argv[1:6]
site = load_release("conda", version, "conda/lock.py")

import conda  # noqa: E402
import conda.lock  # noqa: E402

if conda.__version__ != version or not conda.lock.__file__.startswith(site):
    sys.exit(f"imported conda {conda.__version__} from {conda.lock.__file__}, not {version} from {site}")

root = os.environ["RACELAB_ROOT"]
me = os.environ["RACELAB_ACTOR"]
pkgs, counter = root + pkgs_arg, root + counter_arg

if me == "conda2" and float(later) > 0:
    time.sleep(float(later))
# conda 4.3 takes no package-cache lock: nothing in 4.3.x imports conda.lock (conda/conda
# #4903: "We removed all locks in conda itself in 4.3"), so its processes go straight in.
package_cache_lock = contextlib.nullcontext() if version.startswith("4.3.") else conda.lock.Locked(pkgs)
with package_cache_lock:
    counted_section(root, me, "pkgs", counter, float(work))
