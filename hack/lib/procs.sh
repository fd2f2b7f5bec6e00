# Process helpers shared by the harness scripts that start servers (aws.sh, prometheus.sh,
# kafka.sh). Source it; STOP_GRACE (seconds, default 10) is how long stop_pid waits after
# TERM before KILL.

# is_ours PID MARKER: PID is alive and its command line mentions MARKER (guards PID reuse).
is_ours() {
  local cmd
  [ -n "$1" ] && cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") && [[ "$cmd" == *"$2"* ]]
}

# alive PID: running and not a zombie (an orphan's zombie may wait a while for init).
alive() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}

# stop_pid PIDFILE MARKER: stops the process (and its group) named in PIDFILE when it is
# still ours, waiting until it is gone; removes PIDFILE.
stop_pid() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$pid" != "$$" ] && is_ours "$pid" "$2"; then
    # Each runs in its own session (setsid): signal the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + ${STOP_GRACE:-10}))
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    if alive "$pid"; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      while alive "$pid"; do sleep 0.05; done
    fi
  fi
  rm -f "$f"
}

# start_watchdog MARKER OWNER_PID GUARD SCRIPT DIR: runs `SCRIPT down DIR` when OWNER_PID
# exits, however it exits (its start time guards PID reuse), unless GUARD (a path) is gone
# by then; records the watchdog in DIR/watchdog.pid. MARKER names it for stop_pid.
start_watchdog() {
  setsid bash -c '
    st() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; [ "$1" != Z ] || return 1; echo "${20}"; }
    want=$(st "$1") || want=gone
    while [ -e "$2" ] && [ "$(st "$1" || echo gone)" = "$want" ] && [ "$want" != gone ]; do sleep 1; done
    [ -e "$2" ] && exec "$3" down "$4"
    exit 0' "$1" "$2" "$3" "$4" "$5" >/dev/null 2>&1 </dev/null &
  echo "$!" >"$5/watchdog.pid"
}
