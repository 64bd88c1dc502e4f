#!/usr/bin/env bash
# The single-user image's install steps (the Dockerfile runs them; CI runs `system` and `check` on its machine).
#
#   install-image.sh [system] [labkit] [check]     (default: all three, in that order; as root)
#
#   system  MariaDB (server and client), PostgreSQL and sysbench from the distribution's archive; their own
#           services are never started (the sandbox runs its own servers, as the notebook user).
#   labkit  labkit and its Python packages into $PYTHON's environment (the image's), from LABKIT_SRC.
#   check   as the notebook user ($NB_USER, else a throwaway account), in a fresh LABKIT home: the database
#           programs answer, and the sandbox starts, answers a signed call, and stops with nothing left.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
LABKIT_SRC="${LABKIT_SRC:-/opt/labkit}"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(system labkit check)

system() {
  export DEBIAN_FRONTEND=noninteractive
  # Packages' maintainer scripts must not start servers during a build (no init in a container).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client postgresql postgresql-client sysbench
  rm -rf /var/lib/apt/lists/*
}

labkit() {
  "$PYTHON" -m pip install --no-cache-dir --quiet "$LABKIT_SRC"
}

check() {
  local user="${NB_USER:-}" made=""
  if [ -z "$user" ] || ! id "$user" >/dev/null 2>&1; then
    user="lkimg$RANDOM"; made="$user"
    useradd --create-home --shell /bin/bash "$user"
  fi
  local home; home="$(getent passwd "$user" | cut -d: -f6)"
  local code=0
  su -s /bin/bash "$user" -c "
    set -euo pipefail
    export LABKIT_HOME=\$(mktemp -d)/home PATH=\"$(dirname "$PYTHON"):\$PATH\"
    mariadbd --version >/dev/null 2>&1 || /usr/sbin/mariadbd --version
    sysbench --version
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null
    $PYTHON -m labkit.cli.main sandbox up
    $PYTHON -c 'from labkit.sandbox.backend import SandboxBackend; print(SandboxBackend().client(\"sts\").get_caller_identity()[\"Arn\"])'
    $PYTHON -m labkit.cli.main sandbox down
  " || code=$?
  [ -n "$made" ] && userdel --remove "$made" 2>/dev/null
  return $code
}

for step in "${steps[@]}"; do
  case "$step" in
    system|labkit|check) echo "== $step"; "$step" ;;
    *) echo "unknown step: $step (system, labkit, check)" >&2; exit 2 ;;
  esac
done
