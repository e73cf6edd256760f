# The guest agent of scripts/local-nfs: runs `local-nfs exec` commands inside the VM.
#
#     bash local_nfs_agent.sh QUEUE READY_FILE
#
# Requests travel as files in QUEUE (DIR/vm/q), because the VM sees the host's whole root
# filesystem over 9p, which needs no network and no protocol of our own:
#
#   ID.cmd   host -> agent  CWD, ARGC, the ARGC words of the command, then NAME=VALUE
#                           for each variable of its environment, each ended by a NUL
#   ID.out   agent -> host  the command's stdout, written as it runs (so is ID.err)
#   ID.pid   agent -> host  its process id, also that of its process group
#   ID.rc    agent -> host  its exit status (128+N if signal N killed it), then a newline;
#                           whatever is left of its process group is killed then
#   ID.kill  host -> agent  SIGTERM the command's process group, SIGKILL 5 s later
#   stop     host -> agent  SIGKILL every command and exit (the guest then powers off)
#
# Why bash, not Python: a Python start-up costs ~3 s of emulated CPU and 9p reads here,
# and the agent starts on every boot.  Why a bell: a look at QUEUE is a 9p readdir that
# costs emulated CPU, so the agent does not poll often.  The host writes a byte into a
# FIFO that QEMU connects to a virtio-serial port named "bell" after each request, and
# the agent sleeps in `read` on that port until a bell rings or POLL seconds pass (a
# safety net in case a bell is lost).  Each command gets its own subshell, which waits
# for it and writes its status, so commands run concurrently and the loop never waits.

Q=$1 READY=$2
POLL=2
declare -A started killed

run() {   # ID: start the request ID.cmd in a subshell of its own
    local id=$1 req
    mapfile -d '' req < "$Q/$id.cmd" || return 0
    (
        # Bash builtins, not `env -i` and `setsid`: each exec costs ~70 ms here.
        exec 3<&- 2> /dev/null   # no job-control notices in the command's stderr
        rc=127
        if cd -- "${req[0]}" 2> "$Q/$id.err"; then
            unset PATH PWD OLDPWD SHLVL _   # the agent's own environment
            export -- "${req[@]:2+req[1]}"   # names bash cannot export are left out
            set -m   # job control: the command gets a process group of its own
            "${req[@]:2:req[1]}" < /dev/null > "$Q/$id.out" 2> "$Q/$id.err" &
            pid=$!
            echo "$pid" > "$Q/$id.pid"
            if [ -e "$Q/$id.kill" ]; then kill -TERM -- "-$pid"; fi
            wait "$pid"
            rc=$?
            kill -KILL -- "-$pid"
        fi
        echo "$rc" > "$Q/$id.rc"
    ) &
}

signal_cmd() {   # ID SIGNAL: signal the process group of ID's command, if it runs
    local pid
    [ -s "$Q/$1.pid" ] && [ ! -e "$Q/$1.rc" ] || return 1
    read -r pid < "$Q/$1.pid"
    kill "-$2" -- "-$pid" 2> /dev/null
    return 0
}

bell=/dev/null
for port in /sys/class/virtio-ports/*; do
    if [ "$(cat "$port/name" 2> /dev/null)" = bell ]; then bell=/dev/${port##*/}; fi
done
exec 3< "$bell"
echo "agent $$ bell=$bell" > "$READY"

while :; do
    for f in "$Q"/*.cmd; do
        id=${f##*/}; id=${id%.cmd}
        if [ -e "$f" ] && [ -z "${started[$id]:-}" ]; then started[$id]=1; run "$id"; fi
    done
    for f in "$Q"/*.kill; do
        id=${f##*/}; id=${id%.kill}
        # Not started yet: its subshell sees the .kill file itself.
        if [ -e "$f" ] && [ -z "${killed[$id]:-}" ] && signal_cmd "$id" TERM; then
            killed[$id]=1
            (sleep 5; signal_cmd "$id" KILL) &
        fi
    done
    if [ -e "$Q/stop" ]; then
        for f in "$Q"/*.pid; do
            id=${f##*/}; signal_cmd "${id%.pid}" KILL
        done
        exit 0
    fi
    read -r -t "$POLL" -N 1 -u 3 ring
    # EOF (no bell port): wait here instead.  A timeout (status > 128) is normal.
    if [ $? = 1 ]; then sleep "$POLL"; fi
done
