# Shared by deploy/local/demo.sh and tests/run.sh (sourced, not run): installing Debian
# packages without starting their services, and the Python venv with slixmpp.

SLIXMPP_VERSION=1.17.0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# apt_install PACKAGE...: installs with `apt-get update` first. Packages such as prosody
# would start a system-wide server on the default ports; the demo and the tests start
# their own on loopback, so service starts are refused while installing.
apt_install() {
  local created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    created=1
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  if [ -d /run/systemd/system ]; then
    local pkg
    for pkg in "$@"; do
      case $pkg in prosody | ejabberd | postgresql) as_root systemctl disable --now "$pkg" >/dev/null 2>&1 || true ;; esac
    done
  fi
  if [ "$created" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
}

# ensure_venv DIR: a Python venv at DIR with slixmpp $SLIXMPP_VERSION, created when
# missing or holding another version.
ensure_venv() {
  local venv=$1
  if "$venv/bin/python" -c "import slixmpp, sys; sys.exit(slixmpp.__version__ != '$SLIXMPP_VERSION')" 2>/dev/null; then
    return
  fi
  echo "creating $venv with slixmpp $SLIXMPP_VERSION"
  mkdir -p "$(dirname "$venv")"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt_install python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "slixmpp==$SLIXMPP_VERSION"
}
