"""The zygote that forks each case, attacked from a case on the real engine.

Case 1 attacks; case 2 reports what it sees. Each attack must fail, and case 2's
verdict must be what it is alone.
"""

from __future__ import annotations

import re

from codedock_magic import DockerEngine, Limits, check, run
from codedock_magic.core.result import signal_name

# Case 1 (stdin "attack") goes after every process it can name that is not its own:
# the zygote is its parent. Case 2 (stdin "report") prints what it finds.
ATTACKER = r"""
import ctypes, os, signal, sys, random, __main__
mode = input()
zygote = os.getppid()
if mode == "attack":
    found = []
    try:
        with open(f"/proc/{zygote}/mem", "r+b") as mem:
            mem.seek(0x400000)
            mem.write(b"\0" * 64)
        found.append("mem-written")
    except OSError as exc:
        found.append(f"mem:{exc.errno}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, zygote, 0, 0) == 0:  # PTRACE_ATTACH
        found.append("ptraced")
    else:
        found.append(f"ptrace:{ctypes.get_errno()}")
    for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(zygote, sig)
            found.append(f"signalled:{sig.name}")
        except OSError as exc:
            found.append(f"{sig.name}:{exc.errno}")
    with open("/dev/shm/planted", "w") as handle:
        handle.write("x")
    open("/sandbox/planted", "w").write("x")
    import json
    json.planted = "x"
    random.planted = "x"
    __main__.planted = "x"
    sys.argv.append("planted")
    if os.fork() == 0:
        os.setsid()
        import time
        while True:
            time.sleep(0.05)
            try:
                with open("/sandbox/out", "a") as h:
                    h.write("still here\n")
            except OSError:
                pass
    print(" ".join(found), file=sys.stderr)
    print(random.random(), file=sys.stderr)
else:
    import json
    seen = []
    seen.append("shm" if os.path.exists("/dev/shm/planted") else "-")
    seen.append("file" if os.path.exists("/sandbox/planted") else "-")
    seen.append("json" if hasattr(json, "planted") else "-")
    seen.append("random" if hasattr(random, "planted") else "-")
    seen.append("main" if hasattr(__main__, "planted") else "-")
    seen.append(repr(sys.argv))
    others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (os.getpid(),)]
    mine = []
    for pid in others:
        try:
            with open(f"/proc/{pid}/status") as h:
                fields = dict(l.split(":", 1) for l in h.read().splitlines() if ":" in l)
            if int(fields["Uid"].split()[0]) == os.getuid():
                mine.append(pid)
        except (OSError, KeyError):
            pass
    seen.append(f"others:{len(mine)}")
    seen.append(f"names:{sorted(k for k in vars(__main__) if not k.startswith('__'))}")
    print(" ".join(seen), file=sys.stderr)
    print(random.random(), file=sys.stderr)
print("ok")
"""


def test_a_case_cannot_reach_the_zygote_or_the_next_case(engine: DockerEngine) -> None:
    cases = [
        {"name": "attack", "stdin": "attack\n", "expected": "ok"},
        {"name": "report", "stdin": "report\n", "expected": "ok"},
    ]
    result = check(ATTACKER, cases, limits=Limits(timeout=10), reveal_hidden=True)
    attack, report = result.cases
    tried = attack.stderr.splitlines()
    # Its parent's memory, ptrace and three signals: each refused (EACCES, EPERM).
    assert tried[0] == "mem:13 ptrace:1 SIGSTOP:1 SIGTERM:1 SIGKILL:1", tried[0]
    seen = report.stderr.splitlines()
    # Nothing planted is there, argv is its own, no process of case 1 is left, and
    # __main__ holds only what case 2 itself bound.
    assert seen[0].startswith("- - - - - ['/sandbox/main.py'] others:0 names:"), seen[0]
    assert "planted" not in seen[0] and "found" not in seen[0], seen[0]
    assert attack.verdict == "passed" and report.verdict == "passed"
    # Each child draws its own random numbers.
    assert tried[1] != seen[1]
    alone = check(ATTACKER, cases[1:], limits=Limits(timeout=10), reveal_hidden=True).cases[0]
    assert alone.verdict == report.verdict
    assert alone.stderr.splitlines()[0] == seen[0]


# A program that forks the zygote's way would show the same numbers in every case.
DRAWS = "import random, sys\nprint(random.getrandbits(64), sys.argv, __name__, input())\n"


def test_every_case_has_its_own_random_argv_and_main(engine: DockerEngine) -> None:
    cases = [{"name": f"c{i}", "stdin": f"{i}\n", "expected": ""} for i in range(4)]
    result = check(DRAWS, cases, limits=Limits(timeout=10), reveal_hidden=True)
    rows = [case.stdout.split(" ", 1) for case in result.cases]
    assert len({draw for draw, _ in rows}) == 4, rows
    assert [rest for _, rest in rows] == [f"['/sandbox/main.py'] __main__ {i}\n" for i in range(4)]


# How a program ends, each of which a case forked from the zygote must show as a
# fresh python3 does: the exit skips tearing down the zygote's own objects.
ENDINGS = {
    "exit code": "import sys\nprint('a')\nsys.exit(3)\n",
    "exit code wraps": "import sys\nsys.exit(-1)\n",
    "exit message": "import sys\nsys.exit('bye')\n",
    "exit none": "raise SystemExit\n",
    "exception": "def f():\n    raise ValueError('no')\nprint('before')\nf()\n",
    "interrupt": "raise KeyboardInterrupt\n",
    "destructors": (
        "class A:\n"
        "    def __init__(self, name):\n"
        "        self.name = name\n"
        "    def __del__(self):\n"
        "        print('bye', self.name)\n"
        "a = A('a')\nb = A('b')\nc = [A('c')]\nc.append(c)\n"
    ),
    "destructor raises": (
        "class A:\n    def __del__(self):\n        raise RuntimeError('late')\nkeep = A()\n"
    ),
    "atexit": "import atexit\natexit.register(print, 'at exit')\nprint('main')\n",
    "thread": (
        "import threading, time\n"
        "def late():\n    time.sleep(0.3)\n    print('late')\n"
        "threading.Thread(target=late).start()\nprint('main')\n"
    ),
    "daemon thread": (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(5), print('never')), daemon=True).start()\n"
        "print('main')\n"
    ),
    "unflushed file": "f = open('/dev/stdout', 'w')\nf.write('via a file, never closed')\n",
    "stdout swapped": "import io, sys\nsys.stdout = io.StringIO()\nprint('kept')\n",
    "no newline": "import sys\nsys.stdout.write('out')\nsys.stderr.write('err')\n",
    "file a signal handler holds": (
        "import signal\nout = open('/dev/stdout', 'w')\nout.write('answer 42\\n')\n"
        "signal.signal(signal.SIGALRM, lambda *_: out)\n"
    ),
    "file a module holds": (
        "import json\nout = open('/dev/stdout', 'w')\nout.write('kept\\n')\njson.out = out\n"
    ),
    "file an excepthook holds": (
        "import sys\nout = open('/dev/stdout', 'w')\nout.write('hooked\\n')\n"
        "sys.excepthook = lambda *_: out\n"
    ),
    "stdout without closed": (
        "import sys\nclass Capture:\n    def write(self, text):\n        return len(text)\n"
        "    def flush(self):\n        pass\nsys.stdout = Capture()\nprint('x')\n"
    ),
    "exit past a C long": "import sys\nsys.exit(2**63)\n",
    "interrupt's subclass": "class Stop(KeyboardInterrupt):\n    pass\nraise Stop\n",
    "exit message without stderr": "import sys\nsys.stderr = None\nsys.exit('bye')\n",
    "cycle's destructor imports": (
        "class A:\n    def __del__(self):\n        import json\n"
        "        print('del', json.dumps(1))\n"
        "a = A()\na.me = a\ndel a\n"
    ),
}


def test_every_ending_shows_in_a_case_as_in_a_fresh_python3(engine: DockerEngine) -> None:
    limits = Limits(timeout=10)
    for name, code in ENDINGS.items():
        fresh = run(code, limits=limits)
        case = check(code, [{"name": "c", "expected": ""}], limits=limits, reveal_hidden=True)
        ended = case.cases[0]
        # Addresses differ from one python3 to the next anyway.
        shown = [re.sub("0x[0-9a-f]+", "0x?", text) for text in (ended.stderr, fresh.stderr)]
        assert (ended.stdout, shown[0]) == (fresh.stdout, shown[1]), name
        if fresh.signal is not None:
            assert signal_name(fresh.signal) in ended.detail, (name, ended.detail)
        elif fresh.exit_code:
            assert f"exit {fresh.exit_code}" in ended.detail, (name, ended.detail)
        else:
            assert "exit" not in ended.detail, (name, ended.detail)
