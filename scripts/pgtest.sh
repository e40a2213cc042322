#!/usr/bin/env bash
# A throwaway local PostgreSQL for the status store tests (sqlstore/).
#
#   eval "$(./scripts/pgtest.sh start)"   start one; prints export lines to eval
#   ./scripts/pgtest.sh stop [DIR]        stop it and delete its data
#                                         (DIR defaults to $GENPIPE_PGTEST_DIR)
#
# start prints, on stdout and nothing else:
#
#   export GENPIPE_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable'
#   export GENPIPE_PGTEST_DIR='/tmp/genpipe-pgtest.XXXXXX'
#
# The server listens on 127.0.0.1 only, on a free port, with trust
# authentication (anyone on this machine may connect: tests only), fsync off
# (fast; the data is deleted anyway), its data and socket in a temporary
# directory. It needs PostgreSQL's server binaries (initdb, pg_ctl): if they
# are missing and we are root with apt-get, it installs Debian's postgresql
# package without creating its system cluster. initdb refuses to run as
# root, so as root the server runs as the postgres user.
#
# When GENPIPE_TEST_POSTGRES_URL is already set, start uses that server and
# prints nothing. When it cannot start a server, start warns loudly on
# stderr, prints nothing and exits 0: the PostgreSQL tests then skip (or
# fail, with GENPIPE_REQUIRE_POSTGRES=1).
set -euo pipefail

warn() { echo "pgtest: $*" >&2; }

loud() {
  {
    echo "!!! ------------------------------------------------------------------"
    echo "!!! pgtest: $*"
    echo "!!! the PostgreSQL status store tests will SKIP (set GENPIPE_TEST_POSTGRES_URL"
    echo "!!! to a server of your own, or GENPIPE_REQUIRE_POSTGRES=1 to make them fail)"
    echo "!!! ------------------------------------------------------------------"
  } >&2
}

# find_bin prints the directory of initdb and pg_ctl, or fails.
find_bin() {
  local d
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return
  fi
  # Debian keeps the server binaries off PATH; take the newest version.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return
    fi
  done
  return 1
}

install_postgres() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  warn "installing PostgreSQL (apt-get install postgresql)"
  # Only the binaries: no system cluster listening on 5432.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || return 1
  apt-get install -y -qq --no-install-recommends postgresql >&2 || return 1
}

# as_owner runs a command as the user that owns the server: postgres when we
# are root, else ourselves. It runs from / so that the postgres user never
# lacks permission on the current directory.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# port_free reports whether nothing listens on 127.0.0.1:$1.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  if [ -n "${GENPIPE_TEST_POSTGRES_URL:-}" ]; then
    warn "GENPIPE_TEST_POSTGRES_URL is set: using that server"
    return 0
  fi
  local bin
  if ! bin=$(find_bin); then
    if ! install_postgres || ! bin=$(find_bin); then
      loud "no PostgreSQL server binaries (initdb, pg_ctl) and cannot install them (not root, or no apt-get)"
      return 0
    fi
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    loud "running as root but there is no postgres user to run the server as"
    return 0
  fi

  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/genpipe-pgtest.XXXXXX")
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  # Whatever goes wrong from here on, leave nothing behind.
  trap 'stop "$dir" >/dev/null 2>&1 || true' ERR

  if ! as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync \
    >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    stop "$dir" >/dev/null 2>&1 || true
    loud "initdb failed (log above)"
    return 0
  fi

  local port="" attempt
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o \
      "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null 2>&1; then
      break
    fi
    port=""
  done
  if [ -z "$port" ]; then
    tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
    stop "$dir" >/dev/null 2>&1 || true
    loud "pg_ctl start failed (log above)"
    return 0
  fi
  local i
  for i in $(seq 50); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    stop "$dir" >/dev/null 2>&1 || true
    loud "the server on port $port never became ready"
    return 0
  fi
  trap - ERR
  warn "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $dir (stop: $0 stop $dir)"
  echo "export GENPIPE_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'"
  echo "export GENPIPE_PGTEST_DIR='$dir'"
}

stop() {
  local dir=${1:-${GENPIPE_PGTEST_DIR:-}}
  [ -n "$dir" ] || return 0
  case "$dir" in
  */genpipe-pgtest.*) ;;
  *)
    warn "refusing to remove $dir: not a directory this script made"
    return 1
    ;;
  esac
  [ -d "$dir" ] || return 0
  if [ -f "$dir/data/postmaster.pid" ]; then
    local bin
    bin=$(find_bin) && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 ||
      warn "pg_ctl stop failed for $dir/data"
  fi
  rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:-}" ;;
*)
  echo "usage: $0 start | stop [DIR]" >&2
  exit 2
  ;;
esac
