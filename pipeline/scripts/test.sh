#!/usr/bin/env bash
# The test command: set up, check formatting and lints, run every test.
# Store tests also run against PostgreSQL when one answers on 127.0.0.1:5432 (started here
# if the machine has a cluster that is stopped), or at XINFANG_TEST_POSTGRES_URL.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash pipeline/scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/xinfang-target}"
export OMP_THREAD_LIMIT=1

if [ -z "${XINFANG_TEST_POSTGRES_URL:-}" ] && command -v pg_isready >/dev/null 2>&1; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
    for v in $(ls /etc/postgresql 2>/dev/null); do pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true; done
    sleep 2
  fi
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    export XINFANG_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
  fi
fi
echo "PostgreSQL for store tests: ${XINFANG_TEST_POSTGRES_URL:-none (SQLite only)}"

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
