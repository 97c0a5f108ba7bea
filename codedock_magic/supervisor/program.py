"""The supervisor: the main process of every sandbox container.

It is sent to the container as ``python3 -I -S -c <this file>``, so any image with
Python 3 works, and it uses nothing beyond the minimal standard library. It starts
as root holding only CAP_SETUID and CAP_SETGID and:

1. waits (at most the idle seconds given as its one argument) for a JSON header
   line of the protocol version it speaks, then reads the code from its own
   stdin (the host's attach stream), and keeps that stream open as a control
   channel; the stdin bytes that follow are relayed to the program as it reads
   them, never held whole;
2. starts the program as an unprivileged user with no capabilities, in its own
   session, with the highest OOM score so the OOM killer takes it first;
3. relays the program's stdout and stderr to its own stdout in frames
   (kind byte, 4-byte length, payload) that the program cannot forge, since it
   never holds that descriptor;
4. ends with an ``x`` frame saying ``exit N``, ``signal N`` or ``deadline`` and
   exits with the same code a shell would report, when the program exits, when
   its own deadline passes, or at once when the control stream hits EOF (the host
   is gone). When it exits, the container's init exits and the kernel kills
   whatever is left.

The program cannot stop any of this: it runs under another uid without CAP_KILL.
The host's side of the protocol is ``codedock_magic.supervisor.protocol``; the
constants below are this program's own copy of it.
"""

import os
import select
import signal
import struct
import sys
import time

VERSION = 1
READY, OUT, ERR, END = b"r", b"o", b"e", b"x"
EXIT_DEADLINE = 124
EXIT_HOST_GONE = 125
EXIT_CANNOT_START = 126

SCRIPT = "/sandbox/main.py"
CHUNK = 65536


def emit(kind: bytes, payload: bytes, fd: int = 1) -> None:
    data = struct.pack(">cI", kind, len(payload)) + payload
    while data:
        written = os.write(fd, data)
        data = data[written:]


class Refused(Exception):
    """The request is not one this supervisor can run."""


class HostGone(Exception):
    """The control stream ended, or no request came in time."""


def parse_header(line: bytes) -> dict[str, float]:
    """The header: a flat JSON object of numbers, as the host writes it.

    Parsed by hand: the json module (with re and enum behind it) costs a throttled
    container 15 ms to import, which a run sent right after the start would wait for.
    """
    text = line.decode("ascii").strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError("not a JSON object")
    fields: dict[str, float] = {}
    for item in text[1:-1].split(","):
        key, colon, value = item.partition(":")
        key, value = key.strip(), value.strip()
        if not colon or len(key) < 2 or key[0] != '"' or key[-1] != '"':
            raise ValueError(f"bad field {item!r}")
        number = value.lower()
        fields[key[1:-1]] = float(value) if "." in number or "e" in number else int(value)
    return fields


def read_request(idle: float, fd: int = 0) -> tuple[bytes, bytes, int, float, int]:
    """Read the header and the code; return (code, stdin begun, stdin length, timeout, uid).

    The stdin bytes are not waited for: they follow on the control stream and are
    relayed to the program as they come, so that the supervisor never holds a
    copy of them (they would count against the program's memory limit).
    """
    # A container started ahead of time waits here; past ``idle`` seconds nobody
    # wants it any more and it ends itself.
    give_up = time.monotonic() + idle
    buf = b""
    while b"\n" not in buf:
        left = give_up - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise HostGone
        chunk = os.read(fd, CHUNK)
        if not chunk:
            raise HostGone
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    try:
        header = parse_header(line)
        version = header["version"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise Refused(f"bad header: {exc!r}") from None
    # The version first: another version may name its fields otherwise.
    if version != VERSION:
        raise Refused(f"protocol version {version!r} (this supervisor speaks {VERSION})")
    try:
        code_len, stdin_len = int(header["code_bytes"]), int(header["stdin_bytes"])
        timeout, uid = float(header["timeout"]), int(header["uid"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Refused(f"bad header: {exc!r}") from None
    parts = [buf]
    have = len(buf)
    while have < code_len:
        chunk = os.read(fd, min(CHUNK, code_len + stdin_len - have))
        if not chunk:
            raise HostGone
        parts.append(chunk)
        have += len(chunk)
    data = b"".join(parts)
    return data[:code_len], data[code_len : code_len + stdin_len], stdin_len, timeout, uid


# Syscalls a Python sandbox never needs, refused on top of the engine's own
# seccomp profile (filters stack): io_uring (a history of kernel escapes, and it
# bypasses syscall filters), the kernel keyring, and userfaultfd.
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
DENIED = {
    "x86_64": {425, 426, 427, 248, 249, 250, 323},
    "aarch64": {425, 426, 427, 217, 218, 219, 282},
}
X32_BIT = 0x40000000


def build_filter() -> tuple[object, object]:
    """The seccomp filter refusing DENIED, and the libc to install it with.

    Built while the container waits for its code, so a warm run pays only for the
    one prctl call in the child.
    """
    import ctypes

    machine = os.uname().machine
    if machine not in DENIED:
        raise OSError(f"no seccomp filter for {machine}")
    # struct sock_filter: code, jt, jf, k; offsets count from the next instruction.
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, refuse = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, RET_ERRNO | EPERM
    checks = sorted(DENIED[machine])
    # A foreign ABI (i386 on x86_64) jumps straight to the refusal: no Python
    # program uses one, and its numbers differ.
    program = [(ld_abs, 0, 0, 4), (jeq, 0, len(checks) + 3, AUDIT_ARCH[machine]), (ld_abs, 0, 0, 0)]
    # The x32 ABI (nr | X32_BIT) reaches the same calls under other numbers.
    program.append((jge, len(checks) + 1, 0, X32_BIT) if machine == "x86_64" else (jeq, 0, 0, 0))
    for index, number in enumerate(checks):
        program.append((jeq, len(checks) - index, 0, number))
    program += [(ret, 0, 0, allow), (ret, 0, 0, refuse)]

    class Filter(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_ushort),
            ("jt", ctypes.c_ubyte),
            ("jf", ctypes.c_ubyte),
            ("k", ctypes.c_uint),
        ]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(program))(*[Filter(*line) for line in program])
    prog = Program(len(program), filters)
    prog._keep = filters  # the array must live as long as the struct points at it
    return prog, ctypes.CDLL(None, use_errno=True)


def deny_syscalls(built: tuple[object, object]) -> None:
    """Install the filter from :func:`build_filter` in this process, for good."""
    import ctypes

    prog, libc = built
    pr_set_seccomp, seccomp_mode_filter = 22, 2
    if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(prog), 0, 0) != 0:  # type: ignore[attr-defined,arg-type]
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def start_child(code: bytes, uid: int, seccomp: tuple[object, object]) -> tuple[int, int, int, int]:
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
            # After the drop: installing a filter needs no privilege under
            # no-new-privileges, and the program cannot remove it.
            deny_syscalls(seccomp)
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
        os._exit(EXIT_CANNOT_START)
    os.close(in_r)
    os.close(out_w)
    os.close(err_w)
    return pid, in_w, out_r, err_r


def main() -> None:
    try:
        seccomp = build_filter()
    except Exception as exc:
        # Fail closed: without its filter no program runs here.
        os.write(2, b"codedock: cannot build the seccomp filter: " + repr(exc).encode() + b"\n")
        os._exit(EXIT_CANNOT_START)
    # Set up: a pool hands this container out only from now on.
    emit(READY, b"")
    try:
        code, stdin_head, stdin_len, timeout, uid = read_request(
            float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
        )
    except HostGone:
        os._exit(EXIT_HOST_GONE)
    except Refused as exc:
        emit(END, b"refused " + str(exc).encode("ascii", "replace"))
        os._exit(EXIT_CANNOT_START)
    deadline = time.monotonic() + timeout
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    pid, in_w, out_r, err_r = start_child(code, uid, seccomp)
    kinds = {out_r: OUT, err_r: ERR}
    # Stdin still to come on the control stream, and what waits for the program.
    to_read = stdin_len - len(stdin_head)
    pending = bytearray(stdin_head)
    feeding = bool(pending) or to_read > 0
    if feeding:
        os.set_blocking(in_w, False)
    else:
        os.close(in_w)
    status = None
    while status is None:
        left = deadline - time.monotonic()
        if left <= 0:
            emit(END, b"deadline")
            os._exit(EXIT_DEADLINE)
        readers = [wake_r, *kinds]
        # Backpressure: take more stdin only when the program has taken the last
        # of it. Once all of it is in, the stream is still watched for EOF.
        if len(pending) < CHUNK:
            readers.append(0)
        writers = [in_w] if feeding and pending else []
        try:
            ready_r, ready_w, _ = select.select(readers, writers, [], left)
        except InterruptedError:
            continue
        for fd in ready_r:
            if fd == 0:
                chunk = os.read(0, min(CHUNK, to_read) if to_read > 0 else CHUNK)
                if not chunk:
                    os._exit(EXIT_HOST_GONE)
                if to_read > 0:
                    to_read -= len(chunk)
                    if feeding:
                        pending += chunk
                continue
            chunk = os.read(fd, CHUNK)
            if fd != wake_r:
                if chunk:
                    emit(kinds[fd], chunk)
                else:
                    os.close(fd)
                    del kinds[fd]
        if ready_w:
            try:
                del pending[: os.write(in_w, pending)]
            except OSError:
                # The program closed its stdin: the rest is read and dropped.
                pending.clear()
                feeding = False
                os.close(in_w)
        if feeding and not pending and to_read == 0:
            feeding = False
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
        emit(END, b"signal %d" % number)
        os._exit(128 + number)
    exit_code = os.WEXITSTATUS(status)
    emit(END, b"exit %d" % exit_code)
    os._exit(exit_code)


if __name__ == "__main__":
    main()
