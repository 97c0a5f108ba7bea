"""The supervisor: the main process of every sandbox container.

It is sent to the container as ``python3 -I -S -c <this file>``, so any image with
Python 3 works, and it uses nothing beyond the minimal standard library. It starts
as root holding only CAP_SETUID and CAP_SETGID and:

1. waits (at most the idle seconds given as its one argument) for a header line,
   then reads the code and the stdin bytes from its own stdin (the host's attach
   stream), and keeps that stream open as a control channel;
2. starts the program as an unprivileged user with no capabilities, in its own
   session, with the highest OOM score so the OOM killer takes it first;
3. relays the program's stdout and stderr to its own stdout in frames
   (kind byte, 4-byte length, payload) that the program cannot forge, since it
   never holds that descriptor;
4. ends with an ``x`` frame saying ``exit N`` or ``signal N`` and exits with the
   same code a shell would report, when the program exits, when its own deadline
   passes, or at once when the control stream hits EOF (the host is gone). When it
   exits, the container's init exits and the kernel kills whatever is left.

The program cannot stop any of this: it runs under another uid without CAP_KILL.
"""

import os
import select
import signal
import struct
import sys
import time

SCRIPT = "/sandbox/main.py"
CHUNK = 65536


def emit(kind: bytes, payload: bytes) -> None:
    data = struct.pack(">cI", kind, len(payload)) + payload
    while data:
        written = os.write(1, data)
        data = data[written:]


def read_request(idle: float) -> tuple[bytes, bytes, float, int]:
    # A container started ahead of time waits here; past ``idle`` seconds nobody
    # wants it any more and it ends itself.
    give_up = time.monotonic() + idle
    buf = b""
    while b"\n" not in buf:
        left = give_up - time.monotonic()
        if left <= 0 or not select.select([0], [], [], left)[0]:
            os._exit(125)
        chunk = os.read(0, CHUNK)
        if not chunk:
            os._exit(125)
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    code_len, stdin_len, timeout, uid = line.split()
    need = int(code_len) + int(stdin_len)
    parts = [buf]
    have = len(buf)
    while have < need:
        chunk = os.read(0, CHUNK)
        if not chunk:
            os._exit(125)
        parts.append(chunk)
        have += len(chunk)
    data = b"".join(parts)
    return data[: int(code_len)], data[int(code_len) : need], float(timeout), int(uid)


def start_child(code: bytes, uid: int) -> tuple[int, int, int, int]:
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.closerange(3, 65536)
            os.setsid()
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            with open("/proc/self/oom_score_adj", "w") as adj:
                adj.write("1000")
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            fd = os.open(SCRIPT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            view = memoryview(code)
            while view:
                view = view[os.write(fd, view) :]
            os.close(fd)
            env = dict(os.environ)
            env.update(
                HOME="/sandbox",
                TMPDIR="/sandbox",
                PYTHONUNBUFFERED="1",
                PYTHONDONTWRITEBYTECODE="1",
                PYTHONIOENCODING="utf-8",
            )
            env.setdefault("LANG", "C.UTF-8")
            os.chdir("/sandbox")
            os.execve(sys.executable, [sys.executable, "-u", SCRIPT], env)
        except BaseException as exc:
            os.write(2, b"codedock: could not start the program: " + repr(exc).encode() + b"\n")
        os._exit(126)
    os.close(in_r)
    os.close(out_w)
    os.close(err_w)
    return pid, in_w, out_r, err_r


def main() -> None:
    code, stdin_data, timeout, uid = read_request(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
    deadline = time.monotonic() + timeout
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    pid, in_w, out_r, err_r = start_child(code, uid)
    kinds = {out_r: b"o", err_r: b"e"}
    pending = memoryview(stdin_data)
    if pending:
        os.set_blocking(in_w, False)
    else:
        os.close(in_w)
    status = None
    while status is None:
        left = deadline - time.monotonic()
        if left <= 0:
            emit(b"x", b"deadline")
            os._exit(124)
        readers = [0, wake_r, *kinds]
        writers = [in_w] if pending else []
        try:
            ready_r, ready_w, _ = select.select(readers, writers, [], left)
        except InterruptedError:
            continue
        for fd in ready_r:
            chunk = os.read(fd, CHUNK)
            if fd == 0:
                if not chunk:
                    os._exit(125)
            elif fd != wake_r:
                if chunk:
                    emit(kinds[fd], chunk)
                else:
                    os.close(fd)
                    del kinds[fd]
        if ready_w:
            try:
                pending = pending[os.write(in_w, pending) :]
            except OSError:
                pending = pending[:0]
            if not pending:
                os.close(in_w)
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            status = None
    # Output written just before the exit is still in the pipes; take what is there
    # without waiting for background processes that may hold them open.
    budget = 16 * CHUNK
    for fd, kind in kinds.items():
        while budget > 0 and select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                break
            budget -= len(chunk)
            emit(kind, chunk)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        emit(b"x", b"signal %d" % number)
        os._exit(128 + number)
    exit_code = os.WEXITSTATUS(status)
    emit(b"x", b"exit %d" % exit_code)
    os._exit(exit_code)


if __name__ == "__main__":
    main()
