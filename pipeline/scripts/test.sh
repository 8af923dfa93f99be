#!/usr/bin/env bash
# The test command: set up, check formatting and lints, run every test.
# Store tests also run against PostgreSQL when one answers on 127.0.0.1:5432 (started here
# if the machine has a cluster that is stopped), or at XINFANG_TEST_POSTGRES_URL. With
# XINFANG_REQUIRE_POSTGRES=1 (CI) PostgreSQL is installed and started if missing, and the
# tests fail rather than skip their PostgreSQL half.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash pipeline/scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/xinfang-target}"
export OMP_THREAD_LIMIT=1

if [ -z "${XINFANG_TEST_POSTGRES_URL:-}" ]; then
  url=$(bash pipeline/scripts/postgres.sh)
  if [ -n "$url" ]; then export XINFANG_TEST_POSTGRES_URL="$url"; fi
fi
shown=$(printf '%s' "${XINFANG_TEST_POSTGRES_URL:-none (SQLite only)}" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#')
echo "PostgreSQL for store tests: $shown"

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
