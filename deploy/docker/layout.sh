#!/usr/bin/env bash
# Lays out what the runtime stage of deploy/Dockerfile copies from the
# build stage, under DEST: the binary in DEST/usr/local/bin, ONNX Runtime
# and the converted models (not the conversion venv) in
# DEST/var/lib/vigil/cache, the default pipeline in DEST/etc/vigil.
# The Dockerfile runs it in the build stage; tests/it/deploy.rs runs it
# outside a container and runs the result.
#
#   bash deploy/docker/layout.sh DEST [BINARY] [CACHE]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:?DEST}"
binary="${2:-target/release/vigil}"
cache="${3:-${VIGIL_CACHE:-$HOME/.cache/vigil}}"
# Without its debug information (the release profile keeps line tables).
install -D -m 0755 --strip "$binary" "$dest/usr/local/bin/vigil"
mkdir -p "$dest/var/lib/vigil/cache" "$dest/var/lib/vigil/out"
install -D -m 0644 "$here/pipeline.toml" "$dest/etc/vigil/pipeline.toml"
# The runtime and the models; the venvs (TensorFlow for the conversions)
# and the demo media stay behind. VIGIL_IMAGE_MODELS (the Dockerfile's
# MODELS build argument): `all`, or `core`, every model but speech to text
# (Whisper) and search by meaning (MiniLM), 110 MiB less. In a core image,
# `[encoders.asr]` says its model was left out and how to get it (the
# models/LEFT_OUT file), and search goes by words.
for part in ort models; do
  cp -a "$cache/$part" "$dest/var/lib/vigil/cache/"
done
case "${VIGIL_IMAGE_MODELS:-all}" in
  all) ;;
  core)
    rm -rf "$dest/var/lib/vigil/cache/models/whisper-tiny.en" "$dest/var/lib/vigil/cache/models/minilm"
    echo "this image was built with MODELS=core, without the speech-to-text and search models; build it with \`--build-arg MODELS=all\` for them" \
      >"$dest/var/lib/vigil/cache/models/LEFT_OUT"
    ;;
  *) echo "layout.sh: VIGIL_IMAGE_MODELS is all or core, not ${VIGIL_IMAGE_MODELS}" >&2; exit 2 ;;
esac
echo "layout: $(du -sh "$dest" | cut -f1) in $dest" >&2
