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
SLIXMPP_VERSION=1.17.0
t0=$(date +%s)
say() { echo "[tests/run.sh +$(( $(date +%s) - t0 ))s] $*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_prosody() {
  if command -v prosody >/dev/null && command -v prosodyctl >/dev/null \
     && [ -f /usr/lib/prosody/modules/mod_delegation/mod_delegation.lua ]; then return; fi
  say "installing Debian prosody and prosody-modules (the reference mod_delegation/mod_privilege)"
  # The package would start a system-wide Prosody on the default ports; the tests
  # start their own on loopback, so service starts are refused while installing.
  local created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    created=1
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    prosody prosody-modules lua-unbound lua-event >/dev/null
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now prosody >/dev/null 2>&1 || true
  fi
  if [ "$created" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
}

install_python() {
  local venv=target/venv
  if "$venv/bin/python" -c "import slixmpp, sys; sys.exit(slixmpp.__version__ != '$SLIXMPP_VERSION')" 2>/dev/null; then
    return
  fi
  say "creating $venv with slixmpp $SLIXMPP_VERSION"
  mkdir -p target
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "slixmpp==$SLIXMPP_VERSION"
}

install_prosody
install_python
say "prosody $(dpkg-query -W -f='${Version}' prosody 2>/dev/null || echo '?'), slixmpp $(target/venv/bin/python -c 'import slixmpp; print(slixmpp.__version__)')"

export STANZAGATE_REQUIRE_PEERS=1
export STANZAGATE_PYTHON="$PWD/target/venv/bin/python"
say "cargo test --all-targets $*"
cargo test --all-targets "$@"
say "all tests passed"
