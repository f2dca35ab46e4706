// What the Node drivers of gated scenarios share: how a driver gives up, and loading the pinned
// npm release `cargo xtask venv` installed into $RACELAB_VENV/npm/NAME@VERSION (one prefix per
// release). Nothing here touches $RACELAB_ROOT, so none of it is a gated step: moving it here
// changed no driver's gated calls, and every documented token still replays.
'use strict'

const fs = require('fs')
const path = require('path')

/** Exit 2 (bad input, as racelab's drivers do) with the message on stderr. */
function die (msg) {
  process.stderr.write(msg + '\n')
  process.exit(2)
}

/** The package NAME at exactly VERSION, from the cache, or a clear exit saying what to run. */
function loadPinned (name, version) {
  const venv = process.env.RACELAB_VENV
  if (!venv) die('RACELAB_VENV is not set: run `cargo xtask venv` and set it to the path it prints')
  const prefix = path.join(venv, 'npm', name + '@' + version)
  const pkgDir = path.join(prefix, 'node_modules', name)
  if (!fs.existsSync(path.join(pkgDir, 'package.json'))) {
    const missing = prefix + '.missing'
    if (fs.existsSync(missing)) {
      // `cargo xtask venv` tried and could not install it here: exit 77, racelab's "skip"
      // (crates/real/src/gate/mod.rs, SKIP_STATUS), with its reason.
      process.stderr.write(`${name} ${version} cannot be installed here: ${fs.readFileSync(missing, 'utf8').trim()}\n`)
      process.exit(77)
    }
    die(`${name} ${version} is not in ${prefix} (run \`cargo xtask venv\`)`)
  }
  const installed = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version
  if (installed !== version) die(`${pkgDir} holds ${name} ${installed}, not ${version}`)
  return require(pkgDir)
}

module.exports = { die, loadPinned }
