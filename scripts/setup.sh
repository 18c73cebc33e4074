#!/usr/bin/env bash
# Set up a fresh machine: a .venv with the pinned requirements, and Debian's chromium for
# the browser test, with a Japanese font so screenshots show the hiragana (installed with
# apt-get when missing and we are root).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
# The project itself, editable: the `kmnist` command, and `import kmnist_core` from any folder.
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/opentype/ipafont-gothic ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq chromium fonts-ipafont-gothic >/dev/null
  else
    echo "note: the browser test needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)" >&2
  fi
fi
