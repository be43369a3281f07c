#!/usr/bin/env bash
# Installs the ONNX Runtime shared library into .local/onnxruntime/ (git-ignored).
# It comes from the PyPI wheel `onnxruntime` (the .so needs only libc and libstdc++);
# nothing is downloaded at build time. Idempotent: does nothing when already installed.
set -euo pipefail

ORT_VERSION="${ORT_VERSION:-1.31.1}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.local/onnxruntime"
lib="$dest/libonnxruntime.so"

if [[ -f "$lib" && "$(cat "$dest/VERSION" 2>/dev/null)" == "$ORT_VERSION" ]]; then
  exit 0
fi

case "$(uname -m)" in
  x86_64) platform=manylinux_2_28_x86_64 ;;
  aarch64) platform=manylinux_2_28_aarch64 ;;
  *) echo "onnxruntime.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

python=$(command -v python3 || true)
if [[ -z "$python" ]]; then
  echo "onnxruntime.sh: python3 with pip is needed to fetch the onnxruntime wheel" >&2
  exit 1
fi

wheels="$root/.local/wheels"
mkdir -p "$wheels" "$dest"
echo "fetching onnxruntime $ORT_VERSION ($platform) from PyPI..." >&2
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
  --platform "$platform" --python-version 3.11 \
  -d "$wheels" "onnxruntime==$ORT_VERSION"

"$python" - "$wheels" "$ORT_VERSION" "$dest" <<'PY'
import pathlib, sys, zipfile
wheels, version, dest = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
wheel = next(wheels.glob(f"onnxruntime-{version}-*.whl"))
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so"))
    (dest / "libonnxruntime.so").write_bytes(zf.read(name))
(dest / "VERSION").write_text(version)
PY
echo "installed $lib" >&2
