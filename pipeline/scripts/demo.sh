#!/usr/bin/env bash
# The main job: set up, build, and ingest the committed samples into the embedded SQLite
# store under ./data, printing the table of registered cases. Run it again and every
# letter comes back as a duplicate of its case.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash pipeline/scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/xinfang-target}"
export OMP_THREAD_LIMIT=1
cargo build --release --quiet
exec "$CARGO_TARGET_DIR/release/xinfang" ingest samples/scans samples/text samples/letters/*.txt "$@"
