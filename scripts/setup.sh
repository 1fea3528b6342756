#!/usr/bin/env bash
# Idempotent set-up of a development or CI machine (Debian 12, Python 3.11):
# mosquitto for the integration tests, PostgreSQL for the store's, chromium for the wallboard's,
# and the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive

sudo_() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=no
apt_install() {
    if [ "$apt_updated" = no ]; then
        sudo_ apt-get update -qq
        apt_updated=yes
    fi
    sudo_ apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The tests and the embedded broker run their own mosquitto on other ports: on a
# machine with systemd the Debian package also starts a system mosquitto on 1883.
# (Debian installs the broker in /usr/sbin, off a normal user's PATH; ringmaster.broker
# looks there too.)
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    echo "setup: installing mosquitto" >&2
    apt_install mosquitto mosquitto-clients
fi

# The PostgreSQL store's tests start a private cluster of their own (tests/postgres.py:
# initdb in a temporary folder, a free loopback port, run as the user "postgres" when
# root). The Debian package also makes a system cluster on 5432, which systemd starts on
# a real machine and nothing here relies on. Debian keeps initdb off PATH.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null 2>&1; then
    echo "setup: installing postgresql" >&2
    apt_install postgresql
fi

# The test of the production broker example makes a TLS certificate with openssl.
if ! command -v openssl >/dev/null 2>&1; then
    echo "setup: installing openssl" >&2
    apt_install openssl
fi

# The wallboard's tests drive Debian's chromium through Playwright (never a browser
# Playwright downloads); a font so that the page has text to lay out.
if [ ! -x /usr/bin/chromium ]; then
    echo "setup: installing chromium" >&2
    apt_install chromium
fi
if [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
    echo "setup: installing fonts-dejavu-core" >&2
    apt_install fonts-dejavu-core
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    if ! python3 -m venv .venv 2>/dev/null; then
        # Debian splits ensurepip out of python3 into python3-venv.
        rm -rf .venv
        apt_install python3-venv
        python3 -m venv .venv
    fi
fi

# Reinstall only when the dependencies may have changed: an editable install builds
# in an isolated environment, which costs seconds and network on every run.
stamp=.venv/.ringmaster-deps
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "setup: installing ringmaster and its dependencies into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    echo "$want" >"$stamp"
fi
