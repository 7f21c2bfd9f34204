#!/usr/bin/env bash
# The one test command (README, and .ci/run calls it): installs what a fresh machine lacks,
# starts the local services the cluster tests use, then runs the whole test suite with nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }

# Rust toolchain and nextest.
if ! have cargo; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# A C compiler for the bundled SQLite, tree-sitter and aws-lc.
if ! have cc; then
  echo "== installing a C compiler"
  apt-get update -qq && apt-get install -y -qq build-essential
fi

# ClamAV's scanner, for the agent's antivirus tests (they write their own signatures:
# freshclam's downloads need the internet, which tests must not).
if ! have clamscan; then
  echo "== installing ClamAV"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clamav) \
    || echo "ClamAV could not be installed; its tests will say they were skipped"
fi

# Third-party writers the package tests build real inputs with: Debian's `wixl` (MSIs, from
# msitools) and mingw's `windres` + `gcc` (EXEs with version resources; the same toolchain
# builds Ferry for Windows). Without them those tests skip, and fail under CI=true.
if ! have wixl || ! have x86_64-w64-mingw32-windres; then
  echo "== installing wixl and mingw-w64"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wixl gcc-mingw-w64-x86-64) \
    || echo "wixl/mingw-w64 could not be installed; the tests that need them will say they were skipped"
fi

# Python test tools from PyPI, in a virtualenv under target/: the Standard Webhooks reference
# verifier the fake helpdesk checks every callback with, and aiosmtpd, a real SMTP server.
VENV=target/test-venv
if ! "$VENV/bin/python" -c "import standardwebhooks, aiosmtpd" >/dev/null 2>&1; then
  echo "== installing Python test tools (standardwebhooks, aiosmtpd)"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q standardwebhooks==1.1.0 aiosmtpd==1.4.6
fi
export FERRY_TEST_PYTHON="$PWD/$VENV/bin/python"

# PostgreSQL and NATS (JetStream) on 127.0.0.1, for the cluster-mode tests. Start them if down;
# a machine without them still runs every single-node test.
if have pg_ctlcluster && [ -d /etc/postgresql ]; then
  if ! (echo > /dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    echo "== starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || echo "PostgreSQL did not start"
  fi
fi
if [ -x /usr/sbin/nats-server ]; then
  if ! (echo > /dev/tcp/127.0.0.1/4222) 2>/dev/null; then
    echo "== starting NATS"
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server || echo "NATS did not start"
  fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== tests"
cargo nextest run --workspace --no-fail-fast "$@"
