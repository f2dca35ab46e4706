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
    const why = fs.existsSync(missing) ? fs.readFileSync(missing, 'utf8').trim() : 'not installed'
    die(`${name} ${version} is not in ${prefix}: ${why} (run \`cargo xtask venv\`)`)
  }
  const installed = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version
  if (installed !== version) die(`${pkgDir} holds ${name} ${installed}, not ${version}`)
  return require(pkgDir)
}

module.exports = { die, loadPinned }
