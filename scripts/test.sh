#!/usr/bin/env bash
# Installs what the test suite needs (only what is missing), then runs it.
#   PostgreSQL 15 (server, client tools, pgbench, pg_waldump) from Debian,
#   MariaDB 10.11 (mariadbd, mariadb-install-db, the mariadb client) from Debian;
#     the tests start their own servers and never rely on one the package starts,
#   s3s-fs 0.14.1 (a real S3 API with signature checks) from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || packages+=(postgresql-15)
[ -x /usr/lib/postgresql/15/bin/pg_basebackup ] || packages+=(postgresql-client-15)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || packages+=(mariadb-server)
command -v mariadb >/dev/null || packages+=(mariadb-client)
command -v runuser >/dev/null || packages+=(util-linux)
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing ${packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
fi
# The Debian package starts a cluster of its own; the tests start their own servers.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  as_root pg_ctlcluster 15 main stop || true
fi

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! s3s-fs --version 2>/dev/null | grep -q '0.14.1'; then
  echo "installing s3s-fs 0.14.1"
  cargo install s3s-fs --version 0.14.1 --features binary --locked
fi

cargo test --workspace --locked "$@"
