#!/usr/bin/env bash
# Start the local services the project needs (Redis, PostgreSQL, MariaDB) when they are down,
# and the system libraries its drivers build against. Safe to run again: it only starts what is down.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo "$@"; else "$@"; fi; }

wait_for() {  # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "services: $name did not come up" >&2; return 1
}

ensure_system_packages() {
  local missing=()
  have mysql_config || have mariadb_config || missing+=(libmariadb-dev)
  have pkg-config || missing+=(pkg-config)
  have redis-server || missing+=(redis-server)
  # The admin's end-to-end test drives Debian's headless Chromium (browsers cannot be downloaded).
  { have chromium && have chromedriver; } || missing+=(chromium chromium-driver)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "services: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_redis() {
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
}

ensure_postgres() {
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && return 0
  echo "services: starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
}

ensure_mariadb() {
  mysqladmin -h 127.0.0.1 -P 3306 -uroot status >/dev/null 2>&1 && return 0
  echo "services: starting MariaDB"
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB mysqladmin -h 127.0.0.1 -P 3306 -uroot status
}

ensure_system_packages
ensure_redis
ensure_postgres
ensure_mariadb
