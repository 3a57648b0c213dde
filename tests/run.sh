#!/usr/bin/env bash
# The test command: installs what the end-to-end tests need (Debian prosody, a Python
# venv with slixmpp under target/venv), then runs every test with the peers required.
#
#   tests/run.sh              # everything
#   tests/run.sh e2e_c2s      # extra arguments go to `cargo test`
#
# Needs root (or sudo) for apt-get the first time; later runs skip what is present.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/local/lib.sh
t0=$(date +%s)
say() { echo "[tests/run.sh +$(( $(date +%s) - t0 ))s] $*"; }

install_prosody() {
  if command -v prosody >/dev/null && command -v prosodyctl >/dev/null \
     && [ -f /usr/lib/prosody/modules/mod_delegation/mod_delegation.lua ]; then return; fi
  say "installing Debian prosody and prosody-modules (the reference mod_delegation/mod_privilege)"
  apt_install prosody prosody-modules lua-unbound lua-event
}

install_python() { ensure_venv target/venv; }

install_prosody
install_python
say "prosody $(dpkg-query -W -f='${Version}' prosody 2>/dev/null || echo '?'), slixmpp $(target/venv/bin/python -c 'import slixmpp; print(slixmpp.__version__)')"

export STANZAGATE_REQUIRE_PEERS=1
export STANZAGATE_PYTHON="$PWD/target/venv/bin/python"
say "cargo test --all-targets $*"
cargo test --all-targets "$@"
say "all tests passed"
