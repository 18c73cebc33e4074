#!/usr/bin/env bash
# Quick start: set up (scripts/setup.sh), then `streamlit run app.py`.
# The data: $KMNIST_DATA_DIR, else ../shared/data/kmnist-mini when present, else tensorflow-datasets
# (kmnist_core.data.default_data_dir decides, for the app and the CLI alike).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/streamlit run app.py "$@"
