"""The host side of `local-nfs exec DIR [--cwd P] [--timeout S] -- CMD [ARG...]`.

Runs CMD in the VM of the bed in DIR (see local_nfs_agent.sh for the file protocol),
with this process's environment plus NFS_MNT_A, NFS_MNT_B and NFS_EXPORT, and its
working directory (or P); the paths are the same in the VM.  CMD's stdout and stderr
are relayed as they come, and its exit status is ours: 128+N if signal N killed it,
124 if it ran past S seconds, 255 if the VM is not running or went away.  SIGINT or
SIGTERM here ends CMD in the VM (SIGTERM, SIGKILL 5 s later), then exits 128+signal.
CMD's stdin is /dev/null.  Several exec calls may run at once.
"""

import os
import signal
import sys
import time
import uuid

USAGE = "usage: local-nfs exec DIR [--cwd P] [--timeout S] -- CMD [ARG...]"
PICKUP = 60  # seconds for the agent to take a request (it takes ~0.1 s)


def fail(text, status=255):
    print(f"local-nfs exec: {text}", file=sys.stderr)
    sys.exit(status)


def parse(args):
    d, cwd, timeout = os.path.realpath(args[0]), os.getcwd(), None
    args = args[1:]
    while args and args[0] != "--":
        opt = args.pop(0)
        if opt not in ("--cwd", "--timeout") or not args:
            fail(USAGE, 2)
        if opt == "--cwd":
            cwd = os.path.abspath(args.pop(0))
        else:
            try:
                timeout = float(args.pop(0))
            except ValueError:
                fail(USAGE, 2)
    if len(args) < 2:
        fail(USAGE, 2)
    return d, cwd, timeout, args[1:]


def starttime(pid):
    """Field 22 of /proc/PID/stat, None if the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def main():
    if len(sys.argv) < 2:
        fail(USAGE, 2)
    d, cwd, timeout, argv = parse(sys.argv[1:])
    q = os.path.join(d, "vm", "q")
    qemu = None
    try:
        with open(os.path.join(d, "pids")) as f:
            qemu = next((line.split()[1:] for line in f if line.startswith("qemu ")), None)
    except FileNotFoundError:
        pass
    if not os.path.exists(os.path.join(d, "vm", "ready")) or qemu is None:
        fail(f"no NFS bed is running in {d} (local-nfs start {d})")

    def vm_alive():
        return starttime(qemu[0]) == qemu[1]

    cid = uuid.uuid4().hex
    path = lambda ext: os.path.join(q, cid + ext)

    def ring():
        # QEMU holds the FIFO open for reading.  If it is gone, or the FIFO is full
        # of unread bells, give up: the agent looks at the queue every 2 s anyway.
        try:
            fd = os.open(os.path.join(d, "vm", "bell.in"), os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, b"\n")
            finally:
                os.close(fd)
        except OSError:
            pass

    env = dict(os.environ, PWD=cwd) if cwd != os.getcwd() else dict(os.environ)
    env.update(NFS_MNT_A=os.path.join(d, "mnt-a"),
               NFS_MNT_B=os.path.join(d, "mnt-b"), NFS_EXPORT=os.path.join(d, "export"))
    got = []  # signals received; handled from here on, before the command exists
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda n, _: got.append(n))
    words = [cwd, str(len(argv)), *argv, *(f"{k}={v}" for k, v in env.items())]
    with open(path(".tmp"), "wb") as f:
        f.write(b"".join(os.fsencode(w) + b"\0" for w in words))
    os.rename(path(".tmp"), path(".cmd"))
    ring()

    offsets = {".out": 0, ".err": 0}
    streams = {".out": sys.stdout.buffer, ".err": sys.stderr.buffer}

    def relay():
        moved = False
        for ext, off in offsets.items():
            try:
                with open(path(ext), "rb") as f:
                    f.seek(off)
                    data = f.read()
            except FileNotFoundError:
                continue
            if data:
                offsets[ext] += len(data)
                streams[ext].write(data)
                streams[ext].flush()
                moved = True
        return moved

    start = time.monotonic()
    nap, rc, status, kill_sent, taken = 0.002, None, None, None, False
    while rc is None:
        if relay():
            nap = 0.002
        try:
            with open(path(".rc")) as f:
                text = f.read()
            if text.endswith("\n"):  # else the agent has made it but not written it yet
                rc = int(text)
                break
        except FileNotFoundError:
            pass
        if not vm_alive():
            print("local-nfs exec: the VM went away", file=sys.stderr)
            status = 255
            break
        now = time.monotonic()
        if kill_sent is None and (got or (timeout is not None and now - start > timeout)):
            status = 128 + got[0] if got else 124
            open(path(".kill"), "w").close()
            ring()
            kill_sent = now
        elif kill_sent is not None and now - kill_sent > 15:
            print("local-nfs exec: the agent in the VM does not answer", file=sys.stderr)
            break
        if not taken:  # the agent makes ID.err when it takes the request
            taken = os.path.exists(path(".err"))
            if not taken and now - start > PICKUP:
                print("local-nfs exec: the agent in the VM does not take commands",
                      file=sys.stderr)
                status = 255
                break
        time.sleep(nap)
        nap = min(nap * 1.5, 0.05)  # fast at first (short commands), then 20 looks a second
    relay()
    for ext in (".cmd", ".pid", ".out", ".err", ".rc", ".kill"):
        try:
            os.unlink(path(ext))
        except FileNotFoundError:
            pass
    if status is not None:
        sys.exit(status)
    sys.exit(rc)


if __name__ == "__main__":
    main()
