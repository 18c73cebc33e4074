#!/usr/bin/env bash
# Quick start: set up (scripts/setup.sh), then `streamlit run app.py`.
# Uses ../shared/data/kmnist-mini when KMNIST_DATA_DIR is not set and that folder exists.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [ -z "${KMNIST_DATA_DIR:-}" ] && [ -d ../shared/data/kmnist-mini ]; then
  export KMNIST_DATA_DIR="$(cd ../shared/data/kmnist-mini && pwd)"
fi
exec .venv/bin/streamlit run app.py "$@"
