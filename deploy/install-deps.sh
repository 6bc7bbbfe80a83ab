#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian machine: PostgreSQL and
# Dovecot from Debian's packages, wrk for the webhook benchmark, the Python
# virtualenv with the project and its test extras, and Kafka's jars via Maven.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${need[*]} (run as root, or install them)" >&2; exit 1
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Package scripts must not start system-wide services; the tests start their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq "${need[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# setuptools always prints an information block for an editable install
# through its import finder (which our package-dir layout needs), warning that
# a folder named like the package may shadow it; here that folder is the
# package.  Only that notice is silenced; real warnings still show.
PYTHONWARNINGS="ignore:Editable installation" .venv/bin/pip install -q -e ".[test]"

if [ ! -d deploy/kafka/lib ]; then
  # Maven prints terminal reset codes even in quiet batch mode: its output
  # is shown only when it fails.
  if ! out=$(cd deploy/kafka && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=lib 2>&1); then
    echo "$out" >&2; exit 1
  fi
fi
echo "dependencies ready"
