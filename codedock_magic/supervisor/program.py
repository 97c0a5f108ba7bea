"""The supervisor: the main process of every sandbox container.

It is sent to the container as ``python3 -I -S -c <this file>``, so any image with
Python 3 works, and it uses nothing beyond the minimal standard library. It starts
as root holding only CAP_SETUID and CAP_SETGID and:

1. sets itself up, waits for the host's first byte (so that the host is
   listening, on any engine) and only then says it is ready; then waits (at
   most the idle seconds given as its first argument) for a JSON header line of
   the protocol version it speaks, reads the code from its own stdin (the
   host's attach stream), and keeps that stream open as a control channel; the
   stdin bytes that follow are relayed to the program as it reads them, never
   held whole;
2. starts the program as an unprivileged user with no capabilities, in its own
   session, with the highest OOM score so the OOM killer takes it first (and,
   where the kernel has Landlock, no way to open a file under ``/proc`` for
   writing, so no way to lower that score), and with its open files and file
   sizes bounded (rlimits, so that no engine needs ulimits of its own);
3. relays the program's stdout and stderr to its own stdout in frames
   (kind byte, 4-byte length, payload) that the program cannot forge, since it
   never holds that descriptor;
4. when the program exits, or at the run's timeout (when it kills the program),
   reports what the container's cgroup counted (a ``u`` frame: CPU time since
   it set itself up, and the memory high-water mark), then ends with an ``x``
   frame saying ``exit N``, ``signal N`` or ``deadline`` and exits with the same
   code a shell would report; at once when the control stream hits EOF (the
   host is gone). When it exits, the container's init exits and the kernel kills
   whatever is left. Where it is the container's init itself (PID 1), it reaps
   the program's orphans as an init would.

A request with cases (a grader's test inputs) runs the code once per case
instead: each case's header and stdin follow the previous case's on the stream
(the host may send them before that case ends; they wait there), each case gets
a fresh process under its own deadline and memory cap, and between cases every
process of the program's uid is killed and everything it could write (the work
dir, ``/dev/shm``, ``/dev/mqueue``, System V IPC) is removed. The expected
outputs never come here.

The program cannot stop any of this: it runs under another uid without CAP_KILL.
Its processes are killed through a process made before it (:class:`Killer`), so
that a program holding every pid still ends at its deadline. A failure of the
supervisor's own ends the request with an ``x`` frame saying ``failed``, never
with output or a status that would pass for the program's.
The host's side of the protocol is ``codedock_magic.supervisor.protocol``; the
constants below are this program's own copy of it.
"""

# Annotations stay text: images with a Python older than this package run it too.
from __future__ import annotations

# Not signal: its enums cost every container's start 5 ms. (No stubs: it is typed as Any.)
import _signal as signal  # type: ignore[import-not-found]
import os
import select
import struct
import sys
import time

VERSION = 5
# The host's first byte: the supervisor says it is ready only after it.
HELLO = b"h"
READY, OUT, ERR, DISPLAY, FILE, NOTE, CASE, USAGE, END = (
    b"r",
    b"o",
    b"e",
    b"d",
    b"f",
    b"n",
    b"c",
    b"u",
    b"x",
)
EXIT_DEADLINE = 124
EXIT_HOST_GONE = 125
EXIT_CANNOT_START = 126

SCRIPT = "/sandbox/main.py"
CHUNK = 65536
# A root-owned tmpfs the program can read, not write: the runtime, and values.
RUNTIME = "/codedock"
LIB = RUNTIME + "/lib"
VALUES = RUNTIME + "/values.json"
DISPLAY_FD = 3
OUT_DIR = "/sandbox/out"
# Files brought back from OUT_DIR: how many, each, all together.
OUT_FILES, OUT_FILE_BYTES, OUT_BYTES = 100, 8 * 1024 * 1024, 32 * 1024 * 1024
# The program's open files, largest file and processes (0: not bounded here), from
# argv; and whether to start its process before its code comes (see Warm).
LIMITS = {"nofile": 0, "fsize": 0, "nproc": 0, "warm": 0}
# Exit statuses of children reaped as PID 1 before anyone waited for them.
REAPED: dict[int, int] = {}


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


class Control:
    """The host's stream (the container's stdin), read with a buffer of its own.

    A read may take more than one message needs: the rest waits here for the next.
    """

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.buf = bytearray()

    def fill(self, until: float, most: int = CHUNK) -> None:
        """Read once, waiting at most until ``until``; HostGone at EOF or past it."""
        left = until - time.monotonic()
        if left <= 0 or not select.select([self.fd], [], [], left)[0]:
            raise HostGone
        chunk = os.read(self.fd, most)
        if not chunk:
            raise HostGone
        self.buf += chunk

    def line(self, until: float) -> bytes:
        while b"\n" not in self.buf:
            self.fill(until)
        end = self.buf.index(b"\n")
        line = bytes(self.buf[:end])
        del self.buf[: end + 1]
        return line

    def exact(self, count: int, until: float) -> bytes:
        while len(self.buf) < count:
            self.fill(until, count - len(self.buf))
        return self.take(count)

    def take(self, most: int) -> bytes:
        """Up to ``most`` bytes already read, without waiting."""
        data = bytes(self.buf[:most])
        del self.buf[:most]
        return data


def greet(control: Control, until: float, out: int = 1) -> None:
    """Wait for the host's first byte, then say READY: the host is listening by then.

    An engine whose attach does not replay what was written before it (a
    Kubernetes pod's) would otherwise lose the frame.
    """
    first = control.exact(1, until)
    if first != HELLO:
        raise Refused(f"the host's first byte is {first!r}, not {HELLO!r} (protocol {VERSION})")
    emit(READY, b"", out)


def parse_limits(text: str) -> dict[str, int]:
    """``nofile=256,fsize=8388608`` as numbers; a name it does not know is an error."""
    found = dict(LIMITS)
    for item in text.split(","):
        if item:
            name, _, value = item.partition("=")
            if name not in found:
                raise ValueError(f"no limit {name!r}")
            found[name] = int(value)
    return found


def bound_resources(limits: dict[str, int]) -> None:
    """Set the program's rlimits (soft and hard: it cannot raise them again)."""
    import resource

    for name, kind in (
        ("nofile", resource.RLIMIT_NOFILE),
        ("fsize", resource.RLIMIT_FSIZE),
        ("nproc", resource.RLIMIT_NPROC),
    ):
        if limits.get(name):
            resource.setrlimit(kind, (limits[name], limits[name]))


def reap_orphans() -> None:
    """As PID 1, collect every child that has exited, keeping its status for a later wait.

    Processes the program left behind are re-parented to PID 1 when their parent
    exits; an init must reap them, or each holds its pid (and the pids limit)
    for as long as the container lives. Elsewhere the engine's init does it.
    """
    if os.getpid() != 1:
        return
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        REAPED[pid] = status


def wait_child(pid: int, block: bool) -> int | None:
    """``pid``'s exit status (waiting for it if ``block``), or None while it runs."""
    if pid in REAPED:
        return REAPED.pop(pid)
    if ZYGOTE is not None and pid == Zygote.CHILD:
        return ZYGOTE.wait(block)
    done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    return status if done else None


def read_request(control: Control, idle: float) -> tuple[bytes, dict[str, float]]:
    """Read the header and the code; return (code, header).

    The stdin bytes are not waited for: they follow on the control stream and are
    relayed to the program as they come, so that the supervisor never holds a
    copy of them (they would count against the program's memory limit).
    """
    # A container started ahead of time waits here; past ``idle`` seconds nobody
    # wants it any more and it ends itself.
    give_up = time.monotonic() + idle
    line = control.line(give_up)
    try:
        header = parse_header(line)
        version = header["version"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise Refused(f"bad header: {exc!r}") from None
    # The version first: another version may name its fields otherwise.
    if version != VERSION:
        raise Refused(f"protocol version {version!r} (this supervisor speaks {VERSION})")
    try:
        code_len = int(header["code_bytes"])
        for name in ("stdin_bytes", "timeout", "uid", "cases", "extras_bytes"):
            float(header[name])
    except (ValueError, KeyError, TypeError) as exc:
        raise Refused(f"bad header: {exc!r}") from None
    return control.exact(code_len, give_up + header["timeout"]), header


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


# The Landlock ruleset (an fd) every program is confined by, or -1 where the
# kernel has none (gVisor, kernels before 5.13).
FENCE = -1
# landlock_create_ruleset, landlock_add_rule, landlock_restrict_self: the same
# numbers on every architecture.
LANDLOCK_CALLS = (444, 445, 446)
WRITE_FILE = 1 << 1  # LANDLOCK_ACCESS_FS_WRITE_FILE
FENCE_FD = 255


def build_fence(libc: object) -> int:
    """A Landlock ruleset allowing files to be opened for writing anywhere but ``/proc``.

    Through ``/proc`` a program could lower its own OOM score (from the 1000 it
    is given down to the container's 0, the supervisor's own score, which nothing
    here may go below without CAP_SYS_RESOURCE) and so make the supervisor the OOM
    killer's first choice. A Python program has nothing else to write there.
    Landlock needs no privilege (no-new-privileges is set), and a ruleset, once a
    process is bound by it, holds for it and its children for good.
    """
    import ctypes

    create, add, _ = LANDLOCK_CALLS
    handled = ctypes.c_uint64(WRITE_FILE)
    call = libc.syscall  # type: ignore[attr-defined]
    fence = call(create, ctypes.byref(handled), ctypes.sizeof(handled), 0)
    if fence < 0:
        return -1

    class Beneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    # mq_open reaches its queues through the kernel's own mount of the mqueue
    # file system, not through /dev: its root needs a rule of its own.
    for path in [*("/" + name for name in os.listdir("/") if name != "proc"), "/dev/mqueue"]:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            rule = Beneath(WRITE_FILE, fd)
            if call(add, fence, 1, ctypes.byref(rule), 0) != 0:  # LANDLOCK_RULE_PATH_BENEATH
                os.close(fence)
                return -1
        finally:
            os.close(fd)
    # Out of the way of the descriptors a child sets up for the program (0 to 3).
    high = os.dup2(int(fence), FENCE_FD, inheritable=False)
    os.close(fence)
    return high


def fence_in(libc: object) -> None:
    """Bind this process by FENCE, for good (nothing where there is no ruleset)."""
    import ctypes

    if FENCE >= 0 and libc.syscall(LANDLOCK_CALLS[2], FENCE, 0) != 0:  # type: ignore[attr-defined]
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")


def lay_out_runtime(blob: str) -> bool:
    """Write the runtime's files (``path\\nlength\\ntext``, one after another) under LIB."""
    try:
        while blob:
            name, length, rest = blob.split("\n", 2)
            text, blob = rest[: int(length)], rest[int(length) :]
            path = os.path.join(LIB, name)
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(path, 0o644)
    except (OSError, ValueError):
        return False
    return True


class Extras:
    """What a request brings besides code and stdin: values, a name to return, files."""

    def __init__(self, data: bytes = b"") -> None:
        self.values = b""
        self.returns = ""
        self.files: list[tuple[str, bytes]] = []
        at = 0
        while at < len(data):
            kind, name_len, data_len = struct.unpack_from(">cII", data, at)
            at += 9
            name = data[at : at + name_len].decode("utf-8")
            at += name_len
            body = data[at : at + data_len]
            at += data_len
            if kind == b"v":
                self.values = body
            elif kind == b"r":
                self.returns = name
            elif kind == b"f":
                self.files.append((name, body))
            else:
                raise ValueError(f"extra of kind {kind!r}")

    def write_values(self) -> bool:
        if not self.values:
            return True
        try:
            with open(VALUES, "wb") as handle:
                handle.write(self.values)
            os.chmod(VALUES, 0o644)
        except OSError:
            return False
        return True

    def write_files(self) -> None:
        """In the child, as the program's uid: the files it was given, under /sandbox."""
        for name, body in self.files:
            path = os.path.join("/sandbox", name)
            folder = os.path.dirname(path)
            if folder != "/sandbox":
                os.makedirs(folder, mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.close(fd)


def surely_absent(path: str) -> bool:
    """Whether ``path`` is not there, as this process sees it (most runs make no out dir).

    Any other answer (there, or a folder this process may not search) leaves it
    to the program's uid to look, which costs a fork.
    """
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def collect_out() -> bool:
    """As the program's uid: send back the regular files under OUT_DIR, within the caps.

    Symlinks and special files are never followed or read; each one skipped, and
    each file past a cap, is told in a note.
    """
    if not os.path.isdir(OUT_DIR) or os.path.islink(OUT_DIR):
        return True
    count = total = 0
    stack = [""]
    while stack:
        relative = stack.pop()
        try:
            entries = sorted(os.scandir(os.path.join(OUT_DIR, relative)), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            name = os.path.join(relative, entry.name)
            shown = name.encode("utf-8", "surrogateescape")
            if entry.is_symlink():
                emit(NOTE, b"out/" + shown + b" is a symlink; not followed")
            elif entry.is_dir(follow_symlinks=False):
                stack.append(name)
            elif not entry.is_file(follow_symlinks=False):
                emit(NOTE, b"out/" + shown + b" is not a regular file; skipped")
            else:
                try:
                    fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue
                try:
                    size = os.fstat(fd).st_size
                    if count >= OUT_FILES:
                        emit(NOTE, b"out/" + shown + b": past %d files; skipped" % OUT_FILES)
                    elif size > OUT_FILE_BYTES or total + size > OUT_BYTES:
                        emit(NOTE, b"out/" + shown + b" (%d bytes) is past the size caps" % size)
                    else:
                        data = os.read(fd, OUT_FILE_BYTES + 1)[:OUT_FILE_BYTES]
                        count += 1
                        total += len(data)
                        emit(FILE, shown + b"\0" + data)
                finally:
                    os.close(fd)
    return True


def enter_sandbox(uid: int, seccomp: tuple[object, object], keep: int = DISPLAY_FD) -> None:
    """In a child with its descriptors in place: become the program's process, for good.

    Its own session, the highest OOM score, the Landlock fence, no descriptor
    above ``keep``, the rlimits, the sandbox uid with no capabilities, and the
    seccomp filter.
    """
    os.setsid()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if os.getuid() != 0:
        # The supervisor of a Pod made itself non-dumpable, which leaves this
        # process's /proc files root's until its exec: its own again, to set its score.
        seccomp[1].prctl(4, 1, 0, 0, 0)  # type: ignore[attr-defined]  # PR_SET_DUMPABLE 1
    with open("/proc/self/oom_score_adj", "w") as adj:
        adj.write("1000")
    # From here on it cannot write under /proc, so the score stays.
    fence_in(seccomp[1])
    os.closerange(keep + 1, 65536)
    bound_resources(LIMITS)
    become(uid)
    # After the drop: installing a filter needs no privilege under
    # no-new-privileges, and the program cannot remove it.
    deny_syscalls(seccomp)


def program_env(extras: Extras) -> dict[str, str]:
    """The program's environment: the container's, and the runtime's settings."""
    env = dict(os.environ)
    env.update(
        HOME="/sandbox",
        TMPDIR="/sandbox",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONIOENCODING="utf-8",
    )
    env.setdefault("LANG", "C.UTF-8")
    if os.path.isfile(LIB + "/codedock_runtime.py"):
        env["PYTHONPATH"] = ":".join(p for p in (LIB, env.get("PYTHONPATH")) if p)
        env["MPLBACKEND"] = "module://codedock_mpl_backend"
        if extras.values:
            env["CODEDOCK_VALUES"] = VALUES
        if extras.returns:
            env["CODEDOCK_RETURN"] = extras.returns
    return env


def write_script(code: bytes) -> None:
    """As the program's uid: the code, as SCRIPT."""
    fd = os.open(SCRIPT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    view = memoryview(code)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)


def place_streams(in_r: int, out_w: int, err_w: int, show_w: int) -> None:
    """In the child: the program's stdin, stdout, stderr and display descriptor."""
    os.dup2(in_r, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    if show_w != DISPLAY_FD:
        os.dup2(show_w, DISPLAY_FD)
    # A pipe is made close-on-exec; the program must keep this one.
    os.set_inheritable(DISPLAY_FD, True)


def start_child(
    code: bytes, uid: int, seccomp: tuple[object, object], extras: Extras
) -> tuple[int, int, int, int, int]:
    global WARM
    if WARM is not None:
        # A container started ahead of time has the program's process waiting.
        warm, WARM = WARM, None
        handed = warm.hand(code, uid, extras)
        if handed is not None:
            return handed
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    show_r, show_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            place_streams(in_r, out_w, err_w, show_w)
            enter_sandbox(uid, seccomp)
            extras.write_files()
            write_script(code)
            env = program_env(extras)
            os.chdir("/sandbox")
            os.execve(sys.executable, [sys.executable, "-u", SCRIPT], env)
        except BaseException as exc:
            os.write(2, b"codedock: could not start the program: " + repr(exc).encode() + b"\n")
        os._exit(EXIT_CANNOT_START)
    os.close(in_r)
    os.close(out_w)
    os.close(err_w)
    os.close(show_w)
    return pid, in_w, out_r, err_r, show_r


# In a container started ahead of time, the program's process waits for its code
# on GO_FD and says on UP_FD that its interpreter is up; it closes both before
# the code runs, so the program holds what it would hold in a fresh python3.
GO_FD, UP_FD = DISPLAY_FD + 1, DISPLAY_FD + 2

# What that process runs: it is SCRIPT until the code comes, so that python3 was
# started exactly as for a fresh program (argv, sys.path, flags, the runtime
# imported by usercustomize). It imports nothing more, and runs the code in a
# fresh ``__main__``; of an uncaught exception it shows the code's frames only,
# as python3 would.
BOOT = r"""
import os
import sys


def _take():
    os.write(5, b"u")
    os.close(5)
    parts = []
    while True:
        part = os.read(4, 65536)
        if not part:
            break
        parts.append(part)
    os.close(4)
    data = b"".join(parts)
    if not data:
        os._exit(0)
    head, _, data = data.partition(b"\n")
    code_len, returns_len, values = (int(word) for word in head.split())
    code = data[:code_len]
    fd = os.open(__file__, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    view = memoryview(code)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)
    returns = data[code_len : code_len + returns_len].decode("utf-8")
    return code, "/codedock/values.json" if values else "", returns


_code, _values, _returns = _take()
_main = type(sys)("__main__")
_main.__dict__.update(
    __loader__=__loader__,
    __annotations__={},
    __builtins__=__builtins__,
    __file__=__file__,
    __cached__=None,
)
sys.modules["__main__"] = _main
sys.modules["codedock_runtime"]._arrive(_values, _returns)
_failed = None
try:
    exec(compile(_code, __file__, "exec", dont_inherit=True), _main.__dict__)
except SystemExit:
    raise
except BaseException as _exc:
    _failed = _exc.with_traceback(_exc.__traceback__.tb_next)
if _failed is not None:
    sys.last_type, sys.last_value, sys.last_traceback = (
        type(_failed),
        _failed,
        _failed.__traceback__,
    )
    sys.excepthook(type(_failed), _failed, _failed.__traceback__)
    if type(_failed) is KeyboardInterrupt:
        # python3 ends by SIGINT then.
        import _signal

        for _stream in (sys.stdout, sys.stderr):
            _stream.flush()
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGINT)
    raise SystemExit(1)
"""


# The zygote of a run with cases: ``python3 -u -c ZYGOTE_SOURCE UID NOFILE FSIZE NPROC``
# under the program's environment. It stays root (with the supervisor's two
# capabilities, under the same seccomp filter and Landlock fence as a program) and
# non-dumpable, so that no case, running under UID, can signal, trace or read it.
# For each case the supervisor sends the case's four descriptors (stdin, stdout,
# stderr, display) on the socket at descriptor 4; the zygote forks, and the child
# becomes UID and runs the code as a fresh ``python3 -u /sandbox/main.py`` would.
# The zygote answers with the child's wait status (4 bytes) and a SIGCHLD to the
# supervisor, whose child the program is not.
ZYGOTE_SOURCE = r"""
import os, sys
BEFORE = set(sys.modules)
# Not signal: its enum costs the zygote's start 6 ms.
import _io, _signal, _socket, atexit, ctypes, gc, resource, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
uid, nofile, fsize, nproc = (int(arg) for arg in sys.argv[1:5])
link = _socket.socket(fileno=4)
def receive(count):
    data = b""
    while len(data) < count:
        chunk = link.recv(count - len(data))
        if not chunk:
            os._exit(0)
        data += chunk
    return data
source = receive(struct.unpack(">Q", receive(8))[0])
def serve():
    while True:
        fds = []
        data, ancillary, _, _ = link.recvmsg(1, _socket.CMSG_LEN(4 * 4))
        if not data:
            os._exit(0)
        for level, kind, blob in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds += struct.unpack("%di" % (len(blob) // 4), blob[: len(blob) // 4 * 4])
        pid = os.fork()
        if pid == 0:
            return fds
        for fd in fds:
            os.close(fd)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        link.sendall(struct.pack(">i", status))
        # The next case is forked from this memory: nothing of this one stays in it.
        status = pid = fds = None
        os.kill(os.getppid(), 17)  # SIGCHLD: the supervisor's loop wakes
def become():
    high = [os.dup(fd) for fd in fds]
    for target, fd in enumerate(high):
        os.dup2(fd, target)
    os.set_inheritable(3, True)
    os.closerange(4, 65536)
    os.setsid()
    bounds = (resource.RLIMIT_NOFILE, nofile), (resource.RLIMIT_FSIZE, fsize)
    for kind, value in (*bounds, (resource.RLIMIT_NPROC, nproc)):
        if value:
            resource.setrlimit(kind, (value, value))
    # In a Pod the zygote already runs as the sandbox user, with nothing to drop.
    if (os.getuid(), os.getgid()) != (uid, uid):
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    # The uid change made it non-dumpable; a fresh interpreter is dumpable.
    libc.prctl(4, 1, 0, 0, 0)
    os.chdir("/sandbox")
    fd = os.open("/sandbox/main.py", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    view = memoryview(source)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)
def ignored(what, exc):
    # As python3 reports an exception it cannot raise (its unraisable hook's text),
    # from below this source's own frame.
    try:
        import traceback
        text = "Exception ignored in: %r\n" % (what,)
        below = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        text += "".join(traceback.format_exception(type(exc), exc, below))
        if sys.stderr is None:
            os.write(2, text.encode("utf-8", "backslashreplace"))
        else:
            sys.stderr.write(text)
    except BaseException:
        pass
# Each child would otherwise copy every page of the zygote's heap that a garbage
# collection walks; frozen, the zygote's objects are never walked again.
gc.freeze()
fds = serve()
become()
del become, serve, receive, link, libc, fds
# Kept, not freed: freeing them would write to (and so copy) the zygote's pages.
kept = [sys.modules.pop(name) for name in set(sys.modules) - BEFORE]
main = type(sys)("__main__")
main.__file__ = "/sandbox/main.py"
main.__builtins__ = __builtins__
main.__cached__ = None
sys.modules["__main__"] = main
sys.argv[:] = ["/sandbox/main.py"]
sys.path[0] = "/sandbox"
if "random" in sys.modules:
    sys.modules["random"].seed()
status = 0
interrupted = False
try:
    exec(compile(source, "/sandbox/main.py", "exec", dont_inherit=True), main.__dict__)
except SystemExit as exc:
    # As python3 ends on it: None is 0, a number is the status (-1 past a C long),
    # anything else is printed (on the descriptor, without a sys.stderr) and is 1.
    status = exc.code
    if status is None:
        status = 0
    elif isinstance(status, int):
        if not -(2**63) <= status < 2**63:
            status = -1
    else:
        try:
            text = str(status)
        except BaseException:
            text = ""
        try:
            if sys.stderr is None:
                os.write(2, text.encode("utf-8", "backslashreplace") + b"\n")
            else:
                sys.stderr.write(text + "\n")
        except BaseException:
            pass
        status = 1
except BaseException as exc:
    exc.__traceback__ = exc.__traceback__.tb_next  # from the program's own frame on
    sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, exc.__traceback__
    sys.excepthook(type(exc), exc, exc.__traceback__)
    # Only KeyboardInterrupt itself, not a subclass, ends python3 by SIGINT.
    interrupted = type(exc) is KeyboardInterrupt
    status = 1
# python3's exit (Py_FinalizeEx), in its order, as far as a program can see it.
# Tearing down the interpreter would free every object the zygote made, and so
# copy each page of its heap into this process (most of a case's time); the
# program's own objects are let go as python3 lets them go, and the rest goes
# with the process.
if "threading" in sys.modules:
    try:
        sys.modules["threading"]._shutdown()
    except BaseException as joining:
        ignored(sys.modules["threading"], joining)
        joining = None
try:
    atexit._run_exitfuncs()
except BaseException:
    pass
# Daemon threads stop here in python3; here they get the lock only when this waits.
sys.setswitchinterval(1e6)
for name in ("stdout", "stderr"):
    stream = getattr(sys, name, None)
    if stream is None:
        continue
    try:
        closed = bool(stream.closed)
    except BaseException:
        closed = False
    if closed:
        continue
    try:
        stream.flush()
    except BaseException as flushing:
        status = 120
        if name == "stdout":
            ignored(stream, flushing)
        flushing = None
# The signal handlers go, then a collection while modules still import.
for number in range(1, _signal.NSIG):
    try:
        if callable(_signal.getsignal(number)):
            _signal.signal(number, _signal.SIG_DFL)
    except BaseException:
        pass
gc.collect()
for name in (
    "path", "argv", "ps1", "ps2", "last_type", "last_value", "last_traceback",
    "path_hooks", "path_importer_cache", "meta_path", "__interactivehook__",
):
    setattr(sys, name, None)
sys.stdin, sys.stdout, sys.stderr = (
    getattr(sys, "__%s__" % name, None) for name in ("stdin", "stdout", "stderr")
)
# No module can be imported from here on, as in python3's exit.
for name, module in list(sys.modules.items()):
    if module is not main:
        kept.append(module)
    sys.modules[name] = None
module = main = None
gc.collect()
# What sys itself held (its hooks) goes last, as its dict does in python3.
for name in ("excepthook", "displayhook", "breakpointhook", "unraisablehook"):
    setattr(sys, name, getattr(sys, "__%s__" % name, None))
gc.collect()
# A file that only a module still holds would be closed, so flushed, as python3
# frees that module; none of the zygote's own is listed (they are frozen).
for found in gc.get_objects():
    if isinstance(found, _io._IOBase):
        try:
            if not found.closed:
                found.flush()
        except BaseException:
            pass
found = None
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except BaseException:
        pass
if interrupted:
    # python3 ends by SIGINT then; with SIGINT blocked, with 130.
    status = 130
    try:
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGINT)
    except BaseException:
        pass
os._exit(status & 0xFF)
"""


class Warm:
    """The program's process, started before its code came, and the supervisor's ends of it.

    It is made exactly as :func:`start_child` makes a program's process, up to
    the exec of python3, whose runtime is then imported; it waits for its code
    on a pipe. A request it cannot serve (another uid, files to lay out first)
    sends it none: it ends, and the program starts as in a cold container.
    """

    def __init__(self, uid: int, seccomp: tuple[object, object]) -> None:
        self.uid = uid
        in_r, self.in_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.show_r, show_w = os.pipe()
        go_r, self.go = os.pipe()
        self.up_r, up_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                place_streams(in_r, out_w, err_w, show_w)
                # Made after the four above, both are above UP_FD.
                os.dup2(go_r, GO_FD)
                os.dup2(up_w, UP_FD)
                enter_sandbox(uid, seccomp, keep=UP_FD)
                write_script(BOOT.encode("utf-8"))
                env = program_env(Extras())
                os.chdir("/sandbox")
                os.execve(sys.executable, [sys.executable, "-u", SCRIPT], env)
            except BaseException:
                pass
            os._exit(EXIT_CANNOT_START)
        for fd in (in_r, out_w, err_w, show_w, go_r, up_w):
            os.close(fd)
        self.pid = pid

    def up(self, until: float) -> bool:
        """Wait until its interpreter is up; False when it ended first, or took too long."""
        try:
            left = until - time.monotonic()
            ready = left > 0 and select.select([self.up_r], [], [], left)[0]
            return bool(ready) and os.read(self.up_r, 1) == b"u"
        finally:
            os.close(self.up_r)

    def hand(self, code: bytes, uid: int, extras: Extras) -> tuple[int, int, int, int, int] | None:
        """Send it the code: its pid and the supervisor's ends, as :func:`start_child` gives.

        None when it cannot take this request (it is then ended).
        """
        if uid != self.uid or extras.files:
            self.discard()
            return None
        returns = extras.returns.encode("utf-8")
        head = b"%d %d %d\n" % (len(code), len(returns), 1 if extras.values else 0)
        try:
            view = memoryview(head + code + returns)
            while view:
                view = view[os.write(self.go, view) :]
        except OSError:
            self.discard()
            return None
        os.close(self.go)
        return self.pid, self.in_w, self.out_r, self.err_r, self.show_r

    def discard(self) -> None:
        """End it unused, and reap it.

        Reaped here, before any program runs: a zombie of the program's uid would
        be in ``/proc`` for every case of the run, as a process left behind.
        """
        for fd in (self.go, self.in_w, self.out_r, self.err_r, self.show_r):
            os.close(fd)
        # It ends by itself at the end of its pipe; the killer (the supervisor
        # may not signal another uid) ends it now even when it is still starting.
        if KILLER is not None and KILLER.uid == self.uid:
            KILLER.kill()
        while True:
            try:
                os.waitpid(self.pid, 0)
            except InterruptedError:
                continue
            except ChildProcessError:
                pass
            break


WARM: Warm | None = None


def warm_up(seccomp: tuple[object, object], until: float) -> None:
    """In a container started ahead of time: the killer, then the program's process.

    The program's uid is the owner of its work dir, which the engine mounted for
    it; without one of its own, or without the runtime, the program starts when
    its code comes, as in a cold container.
    """
    global KILLER, WARM
    if not LIMITS["warm"] or not os.path.isfile(LIB + "/codedock_runtime.py"):
        return
    try:
        uid = os.stat("/sandbox").st_uid
    except OSError:
        return
    if uid == 0:
        return
    KILLER = Killer(uid)
    warm = Warm(uid, seccomp)
    if warm.up(until):
        WARM = warm
    else:
        warm.discard()


class Zygote:
    """The process that forks each case, started once per run with cases and again if it dies."""

    # What :meth:`spawn` gives for a pid: the case's process is the zygote's
    # child, not the supervisor's, so :func:`wait_child` hands this to :meth:`wait`.
    CHILD = -2

    def __init__(self, code: bytes, uid: int, seccomp: tuple[object, object]) -> None:
        self.code, self.uid, self.seccomp = code, uid, seccomp
        self.pid = 0
        self.child = 0
        self.status: int | None = None
        self.link: object = None
        self.errors = -1

    def start(self) -> None:
        # Not socket: its enums and selectors cost a check's first case 13 ms.
        import _socket as socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = zygote_env()
        # What the zygote says when it cannot start, told as the case's stderr.
        errors_r, errors_w = os.pipe()
        if self.errors >= 0:
            os.close(self.errors)
        self.errors = errors_r
        os.set_blocking(errors_r, False)
        pid = os.fork()
        if pid == 0:
            try:
                # Pipes, as a case's are: the interpreter's stdio objects are
                # made for the descriptors it starts with, and the child keeps them.
                dummy_r, dummy_w = os.pipe()
                os.dup2(dummy_r, 0)
                os.dup2(dummy_w, 1)
                os.dup2(errors_w, 2)
                os.dup2(theirs.fileno(), 4)
                os.set_inheritable(4, True)
                os.setsid()
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                if os.getuid() != 0:
                    self.seccomp[1].prctl(4, 1, 0, 0, 0)  # type: ignore[attr-defined]
                with open("/proc/self/oom_score_adj", "w") as adj:
                    adj.write("1000")
                fence_in(self.seccomp[1])
                deny_syscalls(self.seccomp)
                # After the fence: its ruleset is a descriptor too.
                os.closerange(5, 65536)
                os.closerange(3, 4)
                os.chdir("/")
                limits = [str(LIMITS[name]) for name in ("nofile", "fsize", "nproc")]
                os.execve(
                    sys.executable,
                    [sys.executable, "-u", "-c", ZYGOTE_SOURCE, str(self.uid), *limits],
                    env,
                )
            except BaseException as exc:
                os.write(2, b"codedock: could not start the zygote: " + repr(exc).encode() + b"\n")
            os._exit(EXIT_CANNOT_START)
        theirs.close()
        os.close(errors_w)
        self.pid, self.link = pid, ours
        ours.sendall(struct.pack(">Q", len(self.code)) + self.code)

    def alive(self) -> bool:
        if not self.pid:
            return False
        try:
            return wait_child(self.pid, block=False) is None
        except ChildProcessError:
            return False

    def spawn(self, code: bytes) -> tuple[int, int, int, int, int]:
        """A forked child for one case: (pid, stdin, stdout, stderr, display) as start_child."""
        import _socket as socket

        if code != self.code or not self.alive():
            self.code = code
            self.start()
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        show_r, show_w = os.pipe()
        fds = [in_r, out_w, err_w, show_w]
        try:
            self.link.sendmsg(  # type: ignore[attr-defined]
                [b"c"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("4i", *fds))]
            )
        except OSError:
            self.start()
            self.link.sendmsg(  # type: ignore[attr-defined]
                [b"c"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("4i", *fds))]
            )
        for fd in fds:
            os.close(fd)
        self.child, self.status = self.CHILD, None
        return self.child, in_w, out_r, err_r, show_r

    def wait(self, block: bool) -> int | None:
        """The case's wait status as the zygote reports it, or None while it runs.

        Should the zygote die first, the case counts as killed by SIGKILL.
        """
        fd = self.link.fileno()  # type: ignore[attr-defined]
        while self.status is None:
            try:
                ready = select.select([fd], [], [], None if block else 0)[0]
                if not ready:
                    if self.alive():
                        return None
                    self.status = int(signal.SIGKILL)
                    break
                data = self.link.recv(4, socket_waitall())  # type: ignore[attr-defined]
            except InterruptedError:
                continue
            except OSError:
                data = b""
            killed = int(signal.SIGKILL)
            if len(data) != 4:
                try:
                    said = os.read(self.errors, 4096)
                except OSError:
                    said = b""
                if said:
                    emit(ERR, said)
            self.status = int(struct.unpack(">i", data)[0]) if len(data) == 4 else killed
        return self.status


def socket_waitall() -> int:
    import _socket as socket

    return int(socket.MSG_WAITALL)


ZYGOTE: Zygote | None = None


def zygote_env() -> dict[str, str]:
    """The environment a case's program starts with (as :func:`start_child` gives it)."""
    return program_env(Extras())


class Outcome:
    """How one program ended (``exit``, ``signal``, ``timeout``, ``memory``), and when."""

    def __init__(self, how: str, number: int, seconds: float) -> None:
        self.how, self.number, self.seconds = how, number, seconds


def memory_meter() -> tuple[str, str]:
    """The cgroup files of this container: (memory.stat, the OOM kill counter's file)."""
    for stat, events in (
        ("/sys/fs/cgroup/memory.stat", "/sys/fs/cgroup/memory.events"),
        ("/sys/fs/cgroup/memory/memory.stat", "/sys/fs/cgroup/memory/memory.oom_control"),
    ):
        if os.path.exists(stat):
            return stat, events
    return "", ""


def read_counters(path: str, names: tuple[str, ...]) -> int:
    """The sum of the named ``key value`` lines of a cgroup file (0 when unreadable)."""
    total = 0
    try:
        with open(path, "rb") as handle:
            for line in handle:
                key, _, value = line.partition(b" ")
                if key.decode("ascii", "replace") in names:
                    total += int(value)
    except (OSError, ValueError):
        return 0
    return total


def read_number(path: str) -> int:
    """A cgroup file holding one number (0 when unreadable)."""
    try:
        with open(path, "rb") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def cpu_ns() -> int:
    """CPU time (user and system) the container's cgroup has used, in ns."""
    if os.path.exists("/sys/fs/cgroup/cpu.stat"):
        return read_counters("/sys/fs/cgroup/cpu.stat", ("usage_usec",)) * 1000
    return read_number("/sys/fs/cgroup/cpuacct/cpuacct.usage")


def peak_memory() -> int:
    """The container's cgroup's memory high-water mark, in bytes (0 when unknown)."""
    for path in ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"):
        if os.path.exists(path):
            return read_number(path)
    return 0


def emit_usage(since: int) -> None:
    """The ``u`` frame: CPU ns used since ``since``, and the memory peak, from the cgroup."""
    emit(USAGE, b"%d %d" % (max(0, cpu_ns() - since), peak_memory()))


def in_use(stat: str) -> int:
    # Anonymous memory and tmpfs files: what the programs hold, leaving out the
    # page cache of the image's files, which earlier cases filled.
    return read_counters(stat, ("rss", "shmem", "anon"))


def run_program(
    code: bytes,
    uid: int,
    seccomp: tuple[object, object],
    control: Control,
    stdin_len: int,
    timeout: float,
    *,
    case: bool,
    memory: int = 0,
    meter: tuple[str, str] = ("", ""),
    extras: Extras | None = None,
) -> Outcome:
    """Start the program, relay its stdin and output, and wait for its end.

    At its deadline every process of ``uid`` is killed. A single run (``case``
    false) otherwise leaves what the program left behind to the container's end.
    A case also ends above ``memory`` bytes, always with every process of
    ``uid`` killed, and reads the rest of its stdin off the control stream, so
    that the next case's header comes next.
    """
    extras = extras if extras is not None else Extras()
    started = time.monotonic()
    deadline = started + timeout
    oom_before = read_counters(meter[1], ("oom_kill",)) if case else 0
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    if case and ZYGOTE is not None:
        pid, in_w, out_r, err_r, show_r = ZYGOTE.spawn(code)
    else:
        pid, in_w, out_r, err_r, show_r = start_child(code, uid, seccomp, extras)
    # The display stream first: the runtime sends an image only once the text
    # before it is off its pipe, so text waiting beside an image came after it.
    kinds = {show_r: DISPLAY, out_r: OUT, err_r: ERR}
    # Stdin already read with the request, what is still to come on the control
    # stream, and what waits for the program.
    pending = bytearray(control.take(stdin_len))
    to_read = stdin_len - len(pending)
    feeding = bool(pending) or to_read > 0
    if feeding:
        os.set_blocking(in_w, False)
    else:
        os.close(in_w)
    status = None
    ended = ""
    # A case polls its memory when its own cap is below the container's.
    poll = 0.01 if case and memory else None
    while status is None:
        left = deadline - time.monotonic()
        if left <= 0:
            ended = "timeout"
            break
        if poll is not None and in_use(meter[0]) > memory:
            ended = "memory"
            break
        readers = [wake_r, *kinds]
        # Backpressure: take more stdin only when the program has taken the last
        # of it. Once all of it is in, the stream is still watched for EOF (a
        # case keeps what it reads there: the next case's header).
        if len(pending) < CHUNK and len(control.buf) < CHUNK:
            readers.append(control.fd)
        writers = [in_w] if feeding and pending else []
        try:
            ready_r, ready_w, _ = select.select(
                readers, writers, [], left if poll is None else min(left, poll)
            )
        except InterruptedError:
            continue
        for fd in ready_r:
            if fd == control.fd:
                chunk = os.read(fd, min(CHUNK, to_read) if to_read > 0 else CHUNK)
                if not chunk:
                    os._exit(EXIT_HOST_GONE)
                if to_read > 0:
                    to_read -= len(chunk)
                    if feeding:
                        pending += chunk
                elif case:
                    control.buf += chunk
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
        reap_orphans()
        status = wait_child(pid, block=False)
    seconds = time.monotonic() - started
    if feeding:
        os.close(in_w)
    if case:
        # Whatever the program left running goes now, so the pipes reach their
        # end and nothing reaches the next case.
        if not kill_all(uid):
            emit(END, b"unclean processes outlived their case")
            os._exit(EXIT_CANNOT_START)
        if status is None:
            status = wait_child(pid, block=True)
        for fd, kind in kinds.items():
            while True:
                chunk = os.read(fd, CHUNK)
                if not chunk:
                    break
                emit(kind, chunk)
            os.close(fd)
        while to_read > 0:
            dropped = control.exact(min(CHUNK, to_read), deadline + timeout + 60)
            to_read -= len(dropped)
    else:
        if ended:
            # The program goes now, so that what the cgroup counted can be told.
            kill_all(uid)
        # Output written just before the exit is still in the pipes; take what is
        # there without waiting for background processes that may hold them open.
        budget = 16 * CHUNK
        for fd, kind in kinds.items():
            while budget > 0 and select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, CHUNK)
                if not chunk:
                    break
                budget -= len(chunk)
                emit(kind, chunk)
    signal.set_wakeup_fd(-1)
    os.close(wake_r)
    os.close(wake_w)
    if not ended and case and read_counters(meter[1], ("oom_kill",)) > oom_before:
        ended = "memory"
    if ended or status is None:
        return Outcome(ended or "timeout", 0, seconds)
    if os.WIFSIGNALED(status):
        return Outcome("signal", os.WTERMSIG(status), seconds)
    return Outcome("exit", os.WEXITSTATUS(status), seconds)


def as_uid(uid: int, action: object, make_room: bool = True) -> bool:
    """Run ``action()`` in a child that has become ``uid``; True when it returned truthy.

    At the pids limit (the program may hold every slot) the program's processes
    are killed first when ``make_room``, so that the fork has room.
    """
    try:
        pid = os.fork()
    except BlockingIOError:
        if not make_room:
            raise
        kill_all(uid)
        pid = os.fork()
    if pid == 0:
        ok = False
        try:
            become(uid)
            ok = bool(action())  # type: ignore[operator]
        except BaseException:
            pass
        os._exit(0 if ok else 1)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        except InterruptedError:
            continue


def become(uid: int) -> None:
    """Drop from root to ``uid`` for good; nothing to drop when already ``uid``.

    A Pod runs the supervisor as the sandbox user itself (``runAsNonRoot``), with
    no capability to change it.
    """
    if os.getuid() == uid and os.geteuid() == uid and os.getgid() == uid:
        return
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def processes_of(uid: int) -> list[int]:
    """The live processes running as ``uid``, but the supervisor's own.

    A zombie is not live, unless threads of it still run: its main thread may
    have exited alone, and the rest of it would run on into the next case.
    """
    found = []
    ours = {os.getpid(), KILLER.pid if KILLER is not None else 0}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in ours:
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as handle:
                fields = dict(
                    line.split(b":", 1) for line in handle.read().splitlines() if b":" in line
                )
        except OSError:
            continue
        uids = fields.get(b"Uid", b"").split()
        if not uids or int(uids[0]) != uid:
            continue
        zombie = fields.get(b"State", b"").strip().startswith(b"Z")
        if not zombie or int(fields.get(b"Threads", b"1").strip() or b"1") > 1:
            found.append(int(name))
    return found


def kill_every_process() -> bool:
    """Signal every process this one may (all of its uid's but itself) with SIGKILL."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        return True  # nothing left to signal
    return True


# The killer's real and saved uid: neither root's nor any program's.
KILLER_UID = 65534


class Killer:
    """A process made before the program, that kills every process of its uid on request.

    The supervisor holds no CAP_KILL, and at the pids limit it cannot fork a
    child of the program's uid to kill as it would at the deadline. This process
    is made ahead of time with the program's uid as its effective uid only, so
    ``kill(-1)`` reaches the program's processes and nothing of root's, while its
    real and saved uid (KILLER_UID) keep the program from signalling or tracing
    it. It ends when the supervisor does (its request pipe reaches EOF).
    """

    def __init__(self, uid: int) -> None:
        self.pid = 0
        self.uid = uid
        self.ask = self.told = -1
        ask_r, ask_w = os.pipe()
        told_r, told_w = os.pipe()
        owner = KILLER_UID if uid != KILLER_UID else KILLER_UID - 1
        pid = os.fork()
        if pid == 0:
            try:
                low, high = sorted((ask_r, told_w))
                os.closerange(0, low)
                os.closerange(low + 1, high)
                os.closerange(high + 1, 65536)
                if os.getuid() == 0:
                    os.setgroups([])
                    os.setresgid(owner, owner, owner)
                    os.setresuid(owner, uid, owner)
                while True:
                    asked = os.read(ask_r, 1)
                    if asked == b"k":
                        kill_every_process()
                        os.write(told_w, b"k")
                    elif asked == b"w":
                        os.write(told_w, b"w" if wipe() else b"u")
                    else:
                        break
            except BaseException:
                pass
            os._exit(0)
        os.close(ask_r)
        os.close(told_w)
        self.pid, self.ask, self.told = pid, ask_w, told_r

    def close(self, block: bool = True) -> None:
        """End it (its request pipe reaches EOF) and reap it (without ``block``: if it ended)."""
        for fd in (self.ask, self.told):
            if fd >= 0:
                os.close(fd)
        self.ask = self.told = -1
        pid, self.pid = self.pid, 0
        if pid:
            try:
                wait_child(pid, block)  # also takes it from REAPED, if reaped already
            except ChildProcessError:
                return

    def kill(self) -> bool:
        """Have every process of the uid killed; False when the killer is gone."""
        return self._ask(b"k", (b"k",), 5) == b"k"

    def wipe(self) -> bool | None:
        """Have :func:`wipe` done as the uid: True when all is clean, None when the killer is gone.

        The killer is already of the program's uid, so this costs no fork; it runs
        only once every process of that uid is gone.
        """
        told = self._ask(b"w", (b"w", b"u"), 60)
        return None if not told else told == b"w"

    def _ask(self, what: bytes, answers: tuple[bytes, ...], wait: float) -> bytes:
        """Its one-byte answer to ``what``, or nothing when it is gone or took over ``wait`` s.

        A killer that does not answer in time, or answers out of turn, is let go
        for good (its pid is no longer set apart from the program's): a late
        answer would be taken for the next request's.
        """
        if self.pid == 0:
            return b""
        told = b""
        try:
            os.write(self.ask, what)
            if select.select([self.told], [], [], wait)[0]:
                told = os.read(self.told, 1)
        except OSError:
            told = b""
        if told not in answers:
            self.close(block=False)
            return b""
        return told


KILLER: Killer | None = None


def kill_all(uid: int) -> bool:
    """SIGKILL every process of ``uid``, until none is left; False if some will not go.

    The supervisor holds no CAP_KILL, so it kills as that uid does: through the
    :class:`Killer` made before the program, else a child that becomes ``uid``,
    each signalling every process it may (``kill(-1)``). A process forked while
    that goes on is caught by the next round.
    """
    reap_orphans()
    if not processes_of(uid):
        return True  # nothing of the uid's is left (the common end of a case): no round trip
    for attempt in range(200):
        # The program's own process, once dead, stays a zombie for its waitpid; the
        # rest are the container init's to reap (this process's, as PID 1).
        if KILLER is None or not KILLER.kill():
            try:
                as_uid(uid, kill_every_process, make_room=False)
            except OSError:
                reap_orphans()  # no room to fork: the next round tries again
        reap_orphans()
        if not processes_of(uid):
            return True
        time.sleep(0.005 if attempt < 20 else 0.05)
    return False


WIPED = ("/sandbox", "/dev/shm", "/dev/mqueue")


def wipe() -> bool:
    """Remove everything under WIPED and every System V IPC object; as the program's uid.

    Everything the program could make there is its own, so its uid can remove it
    (a directory it made unreadable is made readable first). Symlinks are removed,
    never followed.
    """
    clean = True
    for root in WIPED:
        if not os.path.isdir(root):
            continue
        stack = [(root.encode(), False)]
        while stack:
            path, emptied = stack.pop()
            if emptied:
                try:
                    os.rmdir(path)
                except OSError:
                    clean = False
                continue
            try:
                if path != root.encode():
                    stack.append((path, True))
                    # A directory the program made unreadable is still its own.
                    os.chmod(path, 0o700)
                entries = list(os.scandir(path))
            except OSError:
                clean = False
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, False))
                    else:
                        os.unlink(entry.path)
                except OSError:
                    clean = False
    return remove_ipc() and clean


def remove_ipc() -> bool:
    """Remove the System V shared memory, message queues and semaphores that are left."""
    # IPC_RMID is 0 for all three; semctl takes a semaphore number before it.
    calls = {"shm": "shmctl", "msg": "msgctl", "sem": "semctl"}
    found = []
    for kind in calls:
        try:
            with open(f"/proc/sysvipc/{kind}", "rb") as handle:
                found += [(kind, int(line.split()[1])) for line in handle.readlines()[1:]]
        except (OSError, ValueError, IndexError):
            continue
    if not found:
        return True
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ok = True
    for kind, ident in found:
        if kind == "sem":
            result = libc.semctl(ident, 0, 0)
        else:
            result = getattr(libc, calls[kind])(ident, 0, None)
        ok = ok and result == 0
    return ok


def run_cases(
    code: bytes,
    header: dict[str, float],
    control: Control,
    seccomp: tuple[object, object],
    since: int,
) -> None:
    """Run the code once per case, each in a fresh process and a fresh, empty work dir.

    Each case's header line (its stdin length, timeout and memory cap) follows the
    last case's stdin, and its own stdin follows it; it is read once the last case
    has ended and the sandbox is reset, whenever the host sent it. Between cases every
    process of the program's uid is killed and everything it could write is
    removed, so nothing of one case reaches the next.
    """
    uid = int(header["uid"])
    until = time.monotonic() + header["timeout"]
    meter = memory_meter()
    global ZYGOTE
    ZYGOTE = Zygote(code, uid, seccomp)
    for _ in range(int(header["cases"])):
        try:
            fields = parse_header(control.line(until))
            stdin_len, timeout = int(fields["stdin_bytes"]), float(fields["timeout"])
            memory = int(fields["memory"])
        except HostGone:
            os._exit(EXIT_HOST_GONE)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            emit(END, b"refused bad case header: " + repr(exc).encode("ascii", "replace"))
            os._exit(EXIT_CANNOT_START)
        outcome = run_program(
            code,
            uid,
            seccomp,
            control,
            stdin_len,
            timeout,
            case=True,
            memory=memory,
            meter=meter,
        )
        emit(CASE, b"%s %d %.4f" % (outcome.how.encode(), outcome.number, outcome.seconds))
        wiped = KILLER.wipe() if KILLER is not None and KILLER.uid == uid else None
        if not (as_uid(uid, wipe) if wiped is None else wiped):
            emit(END, b"unclean files outlived their case")
            os._exit(EXIT_CANNOT_START)
    emit_usage(since)
    emit(END, b"exit 0")
    os._exit(0)


def main() -> None:
    """Serve one request; a failure of the supervisor's own ends it with a ``failed`` frame.

    Its traceback must never pass for the program's stderr, nor its exit code
    for the program's status.
    """
    try:
        serve()
    except BaseException as exc:
        try:
            emit(END, b"failed " + repr(exc).encode("ascii", "replace")[:500])
        finally:
            os._exit(EXIT_CANNOT_START)


def serve() -> None:
    try:
        seccomp = build_filter()
    except Exception as exc:
        # Fail closed: without its filter no program runs here.
        os.write(2, b"codedock: cannot build the seccomp filter: " + repr(exc).encode() + b"\n")
        os._exit(EXIT_CANNOT_START)
    if os.getuid() != 0:
        # In a Pod the program runs as this process's own uid. Non-dumpable, the
        # program cannot trace it nor open its descriptors or memory under /proc;
        # and SIGINT, the one signal PID 1 is not shielded from (Python handles
        # it), is ignored. Each program's process undoes both before its exec.
        seccomp[1].prctl(4, 0, 0, 0, 0)  # type: ignore[attr-defined]  # PR_SET_DUMPABLE 0
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    global FENCE
    try:
        FENCE = build_fence(seccomp[1])
    except Exception:
        FENCE = -1  # no Landlock here: programs run, and may lower their OOM score
    idle = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    give_up = time.monotonic() + idle
    try:
        LIMITS.update(parse_limits(sys.argv[2] if len(sys.argv) > 2 else ""))
    except ValueError as exc:
        os.write(2, b"codedock: bad limits: " + repr(exc).encode() + b"\n")
        os._exit(EXIT_CANNOT_START)
    lay_out_runtime(sys.argv[3] if len(sys.argv) > 3 else "")
    warm_up(seccomp, give_up)
    control = Control()
    try:
        # Set up: a pool hands this container out only once it has said so.
        greet(control, give_up)
        code, header = read_request(control, max(0.0, give_up - time.monotonic()))
    except HostGone:
        os._exit(EXIT_HOST_GONE)
    except Refused as exc:
        emit(END, b"refused " + str(exc).encode("ascii", "replace"))
        os._exit(EXIT_CANNOT_START)
    try:
        extras = Extras(control.exact(int(header["extras_bytes"]), time.monotonic() + 60))
    except HostGone:
        os._exit(EXIT_HOST_GONE)
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        emit(END, b"refused bad extras: " + repr(exc).encode("ascii", "replace"))
        os._exit(EXIT_CANNOT_START)
    if not extras.write_values():
        emit(END, b"refused cannot write the values under " + RUNTIME.encode())
        os._exit(EXIT_CANNOT_START)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    global KILLER, WARM
    if KILLER is None or KILLER.uid != int(header["uid"]):
        if KILLER is not None:
            KILLER.close()  # the pooled container's, made for another uid
        KILLER = Killer(int(header["uid"]))
    if WARM is not None and header["cases"]:
        WARM.discard()
        WARM = None
    # What the supervisor used to set itself up is not the program's.
    since = cpu_ns()
    if header["cases"]:
        run_cases(code, header, control, seccomp, since)
    outcome = run_program(
        code,
        int(header["uid"]),
        seccomp,
        control,
        int(header["stdin_bytes"]),
        float(header["timeout"]),
        case=False,
        extras=extras,
    )
    if not surely_absent(OUT_DIR):
        as_uid(int(header["uid"]), collect_out)
    emit_usage(since)
    if outcome.how == "timeout":
        emit(END, b"deadline")
        os._exit(EXIT_DEADLINE)
    if outcome.how == "signal":
        emit(END, b"signal %d" % outcome.number)
        os._exit(128 + outcome.number)
    emit(END, b"exit %d" % outcome.number)
    os._exit(outcome.number)


if __name__ == "__main__":
    main()
