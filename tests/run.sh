#!/usr/bin/env bash
# The test command: installs what the end-to-end tests need (Debian prosody, ejabberd,
# chromium, libervia-pubsub and postgresql; a Python venv with slixmpp under
# target/venv and slidge under target/venv-slidge; the web clients' npm packages under
# tests/node), then runs every test with the peers required.
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

# ejabberd: the server behind the proxy in the PROXY-protocol-out test (its c2s
# listener takes `use_proxy_protocol`, and its default mod_fail2ban bans by address).
install_ejabberd() {
  if command -v ejabberdctl >/dev/null; then return; fi
  say "installing Debian ejabberd"
  apt_install ejabberd
}

install_python() { ensure_venv target/venv; }

# libervia-pubsub, the external PEP service of the PEP test, with PostgreSQL (its only
# storage; the test runs a cluster of its own in a temporary directory).
install_libervia() {
  if [ -f /usr/share/libervia/sat_pubsub/db/pubsub.sql ] && command -v twistd3 >/dev/null \
     && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && command -v psql >/dev/null; then return; fi
  say "installing Debian libervia-pubsub and postgresql"
  apt_install libervia-pubsub postgresql
}

# The real slidge gateway in a venv of its own (it pins slixmpp and pulls in
# SQLAlchemy, aiohttp, Pillow…), exactly as tests/peers/slidge-requirements.txt pins it.
install_slidge() {
  local venv=target/venv-slidge lock
  lock=$(sha256sum tests/peers/slidge-requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$venv/.installed" 2>/dev/null)" = "$lock" ]; then return; fi
  say "creating $venv with slidge (tests/peers/slidge-requirements.txt)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/peers/slidge-requirements.txt
  echo "$lock" > "$venv/.installed"
}

# The web clients of the WebSocket tests: Node with npm, Debian's Chromium (driven
# headless by puppeteer-core), and tests/node's packages exactly as locked.
install_web_clients() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing Debian nodejs and npm"
    apt_install nodejs npm
  fi
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian chromium (headless, for Converse.js)"
    apt_install chromium
  fi
  local lock
  lock=$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)
  if [ "$(cat tests/node/node_modules/.installed 2>/dev/null)" != "$lock" ]; then
    say "npm ci in tests/node (@xmpp/client, converse.js, puppeteer-core)"
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock" > tests/node/node_modules/.installed
  fi
}

install_prosody
install_ejabberd
install_python
install_slidge
install_libervia
install_web_clients
version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
say "prosody $(version prosody), ejabberd $(version ejabberd), libervia-pubsub $(version libervia-pubsub), chromium $(version chromium), node $(node --version), slixmpp $(target/venv/bin/python -c 'import slixmpp; print(slixmpp.__version__)'), slidge $(target/venv-slidge/bin/python -c 'from importlib.metadata import version; print(version("slidge"))')"

export STANZAGATE_REQUIRE_PEERS=1
export STANZAGATE_PYTHON="$PWD/target/venv/bin/python"
export STANZAGATE_SLIDGE_PYTHON="$PWD/target/venv-slidge/bin/python"
say "cargo test --all-targets $*"
cargo test --all-targets "$@"
say "all tests passed"
