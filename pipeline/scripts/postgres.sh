#!/usr/bin/env bash
# Makes a PostgreSQL server answer on 127.0.0.1:5432 for the store tests and prints a URL
# for it on stdout. Starts a stopped cluster; when XINFANG_REQUIRE_POSTGRES is set and the
# machine has no PostgreSQL at all, installs Debian's (as root or through sudo) and creates
# a cluster. Where password authentication is required, sets one for the postgres role.
# Prints nothing (exit 0) when no server can be had and none is required.
set -euo pipefail

if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else SUDO=(); fi
up() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; }
say() { echo "postgres: $*" >&2; }

if ! up && ! command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "${XINFANG_REQUIRE_POSTGRES:-}" ]; then
  say "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
if ! up && command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ -z "$(ls /etc/postgresql 2>/dev/null)" ] && command -v pg_createcluster >/dev/null 2>&1; then
    v=$(ls /usr/lib/postgresql | sort -V | tail -1)
    say "creating cluster $v/main"
    "${SUDO[@]}" pg_createcluster "$v" main >/dev/null
  fi
  for v in $(ls /etc/postgresql 2>/dev/null); do
    "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true
  done
  for _ in $(seq 1 20); do up && break; sleep 0.5; done
fi
if ! up; then
  if [ -n "${XINFANG_REQUIRE_POSTGRES:-}" ]; then say "no server answers on 127.0.0.1:5432"; exit 1; fi
  exit 0
fi

url="postgres://postgres@127.0.0.1:5432/postgres"
if ! psql "$url" -w -Atc 'SELECT 1' >/dev/null 2>&1; then
  # Password authentication on TCP (Debian's default): give the postgres role one.
  pass="xinfang-test"
  if command -v runuser >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD '$pass'" >/dev/null
  else
    "${SUDO[@]}" -u postgres psql -q -c "ALTER USER postgres PASSWORD '$pass'" >/dev/null
  fi
  url="postgres://postgres:$pass@127.0.0.1:5432/postgres"
  psql "$url" -w -Atc 'SELECT 1' >/dev/null
fi
echo "$url"
