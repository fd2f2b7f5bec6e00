#!/usr/bin/env bash
# Local AWS for tests: moto's server (hack/moto_launcher.py) on a free loopback port,
# from a cached venv with moto[server]==$MOTO_VERSION, with a private state directory.
#
#   hack/aws.sh up [--dir DIR] [--owner-pid PID] [--enforce]
#        start; prints `export …` lines (eval "$(hack/aws.sh up)"), progress on stderr.
#        --owner-pid: a watchdog stops the server and removes DIR when PID exits.
#        --enforce:   create IAM user swell-admin (allowed everything), export its keys
#                     as SWELL_AWS_ADMIN_*, then turn IAM enforcement on.
#                     Without it IAM enforcement starts off.
#   hack/aws.sh down DIR                    stop server and watchdog, remove DIR (idempotent)
#   hack/aws.sh auth on|off [--endpoint URL] IAM enforcement on/off (default $SWELL_AWS_ENDPOINT)
#   hack/aws.sh reset [--endpoint URL]       wipe all state (IAM too: the admin user of
#                                            --enforce is gone, enforcement stays as it was)
#   hack/aws.sh python                       install if needed; print the venv's python
#                                            (has boto3), for harness scripts
#
# Settings (environment): SWELL_CACHE (default ~/.cache/swell).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

MOTO_VERSION=5.2.5
ACCOUNT_ID=123456789012 # moto.core.models.DEFAULT_ACCOUNT_ID
REGION=us-east-1
CACHE="${SWELL_CACHE:-$HOME/.cache/swell}"
VDIR="$CACHE/moto-$MOTO_VERSION"
VENV="$VDIR/venv"

die() { printf 'aws: %s\n' "$*" >&2; exit 1; }
say() { printf '[aws %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need() { command -v "$1" >/dev/null || die "$1 is not installed (needed to $2); install it and retry"; }

# ---------------------------------------------------------------- venv

venv_ready() { [ -f "$VENV/.swell-ready" ] && "$VENV/bin/python" -c '' 2>/dev/null; }

ensure_venv() {
  venv_ready && return 0
  need python3 "create the moto venv"
  need timeout "bound the moto install"
  need flock "serialise the moto install"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null \
    || die "python3 >= 3.9 is missing (found $(python3 -V 2>&1)); moto $MOTO_VERSION needs it"
  mkdir -p "$VDIR"
  local log="$VDIR/install.log"
  exec 9>"$VDIR/.lock"
  # Another `up` may be installing right now: wait for it rather than race it.
  flock -w 900 9 || die "timed out waiting for another install of moto (lock $VDIR/.lock)"
  if venv_ready; then exec 9>&-; return 0; fi
  local t0=$SECONDS
  say "installing moto[server]==$MOTO_VERSION into $VENV (first time only; log: $log)"
  rm -rf "$VENV"
  : >"$log"
  if ! timeout 120 python3 -m venv "$VENV" >>"$log" 2>&1; then
    rm -rf "$VENV"
    if grep -qi 'ensurepip' "$log"; then die "python3's venv/ensurepip module is missing (Debian: apt-get install python3-venv); log: $log"; fi
    die "python3 -m venv $VENV failed: $(tail -n 1 "$log"); log: $log"
  fi
  local rc=0
  timeout 600 "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input \
    --timeout 20 --retries 2 "moto[server]==$MOTO_VERSION" >>"$log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    rm -rf "$VENV"
    if [ $rc -eq 124 ]; then die "pip did not finish installing moto[server]==$MOTO_VERSION within 600s (is PyPI reachable?); log: $log"; fi
    if grep -qiE 'No matching distribution|Could not find a version' "$log"; then
      if grep -qiE 'connection|timed out|NewConnectionError|Name or service' "$log"; then
        die "cannot reach the Python package index to download moto[server]==$MOTO_VERSION (no network/PyPI?); log: $log"
      fi
      die "the package index has no moto[server]==$MOTO_VERSION for $(python3 -V 2>&1); log: $log"
    fi
    die "pip install moto[server]==$MOTO_VERSION failed: $(grep -iE '^error' "$log" | tail -n 1 || tail -n 1 "$log"); log: $log"
  fi
  "$VENV/bin/python" -c "import moto, moto.server, boto3; assert moto.__version__ == '$MOTO_VERSION', moto.__version__" >>"$log" 2>&1 \
    || { rm -rf "$VENV"; die "moto[server]==$MOTO_VERSION installed but does not import: $(tail -n 1 "$log"); log: $log"; }
  touch "$VENV/.swell-ready"
  exec 9>&-
  say "moto installed in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- helpers

# Refuse anything but a loopback endpoint: this harness never talks to another host.
check_endpoint() {
  case "$1" in
    http://127.*|http://localhost:*|http://localhost|http://\[::1\]*) ;;
    *) die "endpoint $1 is not a loopback http URL" ;;
  esac
}

endpoint_arg() { # ARGS... -> echo endpoint
  local ep="${SWELL_AWS_ENDPOINT:-}"
  while [ $# -gt 0 ]; do
    case $1 in
      --endpoint) [ $# -ge 2 ] || die "--endpoint needs a URL"; ep=$2; shift 2 ;;
      *) die "unknown argument $1" ;;
    esac
  done
  [ -n "$ep" ] || die "no endpoint: pass --endpoint URL or eval \"\$(hack/aws.sh up)\" first"
  check_endpoint "$ep"
  printf '%s\n' "${ep%/}"
}

post() { # URL BODY
  need curl "talk to moto"
  # text/plain: with a form content type Flask swallows the body and moto sees ''.
  curl -sS --fail --noproxy '*' --max-time 10 -X POST -H 'Content-Type: text/plain' \
    --data-binary "$2" "$1"
}

# shellcheck source=lib/procs.sh
source "$here/lib/procs.sh"

stop_dir() { # DIR
  local dir=$1
  # Watchdog first, so that it does not start a second `down` meanwhile.
  stop_pid "$dir/watchdog.pid" swell-aws-watchdog
  stop_pid "$dir/moto.pid" moto_launcher.py
  case "$dir" in /|"$HOME"|"") ;; *) rm -rf "$dir" ;; esac
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local dir="" owner="" enforce=0
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir=$2; shift 2 ;;
      --owner-pid) [ $# -ge 2 ] || die "--owner-pid needs a PID"; owner=$2; shift 2 ;;
      --enforce) enforce=1; shift ;;
      *) die "unknown argument $1 (usage: aws.sh up [--dir DIR] [--owner-pid PID] [--enforce])" ;;
    esac
  done
  need curl "probe moto"
  need setsid "run moto in its own session"
  if [ -n "$owner" ]; then
    [[ "$owner" =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null || die "--owner-pid $owner is not a running process"
  fi
  local t0=$SECONDS
  ensure_venv
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/swell-aws.XXXXXX"); fi
  [ -f "$dir/moto.pid" ] && die "$dir already holds a moto server; stop it first with: hack/aws.sh down $dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]] || die "state directory $dir has characters unsafe for the env file"
  rm -f "$dir/port"

  # The launcher binds port 0 itself and writes the port the kernel gave it: no window
  # in which another process can take the port between picking and binding it.
  # -I: no PYTHONPATH, user site-packages etc. can shadow the venv's moto.
  # moto's recorder appends every request to requests.jsonl, so tests can count the calls
  # AWS would have received (Aws::requests in swell-testkit).
  setsid env -u MOTO_ACCOUNT_ID INITIAL_NO_AUTH_ACTION_COUNT=inf \
    MOTO_ENABLE_RECORDING=true MOTO_RECORDER_FILEPATH="$dir/requests.jsonl" \
    "$VENV/bin/python" -I "$here/moto_launcher.py" --host 127.0.0.1 --port 0 --port-file "$dir/port" \
    >"$dir/moto.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/moto.pid"
  # Whatever stops `up` before it prints the env (an error, ^C) stops the server too.
  UP_DIR=$dir UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || stop_dir "$UP_DIR"' EXIT
  trap 'exit 130' INT TERM

  if [ -n "$owner" ]; then
    # Tear down when the owner exits, however it exits. The owner's start time guards
    # against its PID being reused. `down` kills this watchdog first, by its marker.
    start_watchdog swell-aws-watchdog "$owner" "$dir/moto.pid" "$here/aws.sh" "$dir"
  fi

  fail() {
    say "$1; last lines of $dir/moto.log:"
    tail -n 30 "$dir/moto.log" >&2 || true
    stop_dir "$dir"
    exit 1
  }
  local deadline=$((SECONDS + 30)) port=""
  while :; do
    if [ -z "$port" ] && [ -s "$dir/port" ]; then port=$(cat "$dir/port"); fi
    if [ -n "$port" ] && curl -sf --noproxy '*' --max-time 2 -o /dev/null "http://127.0.0.1:$port/moto-api/"; then break; fi
    alive "$pid" || fail "moto exited"
    [ $SECONDS -lt $deadline ] || fail "moto not ready after 30s"
    sleep 0.1
  done
  local ep="http://127.0.0.1:$port"

  {
    echo "export SWELL_AWS_ENDPOINT=$ep"
    echo "export AWS_ENDPOINT_URL=$ep"
    echo "export AWS_REGION=$REGION"
    echo "export MOTO_ACCOUNT_ID=$ACCOUNT_ID"
    echo "export SWELL_AWS_DIR=$dir"
  } >"$dir/aws.env.tmp"

  if [ $enforce = 1 ]; then
    local keys
    keys=$("$VENV/bin/python" -I - "$ep" "$REGION" <<'PY'
import json, sys
import boto3
ep, region = sys.argv[1], sys.argv[2]
iam = boto3.client("iam", endpoint_url=ep, region_name=region,
                   aws_access_key_id="swell-setup", aws_secret_access_key="swell-setup")
iam.create_user(UserName="swell-admin")
iam.put_user_policy(UserName="swell-admin", PolicyName="allow-all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="swell-admin")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
PY
    ) || fail "could not create the swell-admin IAM user"
    {
      echo "export SWELL_AWS_ADMIN_ACCESS_KEY_ID=${keys%% *}"
      echo "export SWELL_AWS_ADMIN_SECRET_ACCESS_KEY=${keys#* }"
    } >>"$dir/aws.env.tmp"
    post "$ep/moto-api/reset-auth" 0 >/dev/null || fail "could not turn IAM enforcement on"
  fi
  mv "$dir/aws.env.tmp" "$dir/aws.env"
  UP_DONE=1
  say "moto $MOTO_VERSION up on $ep in $((SECONDS - t0))s (IAM enforcement $([ $enforce = 1 ] && echo on || echo off); state: $dir)"
  cat "$dir/aws.env"
}

cmd_down() {
  [ $# -eq 1 ] || die "usage: aws.sh down DIR"
  [ -d "$1" ] || { say "$1 does not exist; nothing to stop"; return 0; }
  stop_dir "$1"
  say "stopped and removed $1"
}

cmd_auth() {
  local mode=${1:-}; shift || true
  local body
  case $mode in
    on) body=0 ;;
    off) body=inf ;;
    *) die "usage: aws.sh auth on|off [--endpoint URL]" ;;
  esac
  local ep; ep=$(endpoint_arg "$@")
  post "$ep/moto-api/reset-auth" "$body" >/dev/null || die "POST $ep/moto-api/reset-auth failed"
  say "IAM enforcement $mode at $ep"
}

cmd_reset() {
  local ep; ep=$(endpoint_arg "$@")
  post "$ep/moto-api/reset" "" >/dev/null || die "POST $ep/moto-api/reset failed"
  say "state wiped at $ep"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  auth) shift; cmd_auth "$@" ;;
  reset) shift; cmd_reset "$@" ;;
  python) ensure_venv; echo "$VENV/bin/python" ;;
  *) die "usage: aws.sh up|down|auth|reset|python … (see the top of hack/aws.sh)" ;;
esac
