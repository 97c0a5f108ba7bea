"""The zygote that forks each case, attacked from a case on the real engine.

Case 1 attacks; case 2 reports what it sees. Each attack must fail, and case 2's
verdict must be what it is alone.
"""

from __future__ import annotations

from codedock_magic import DockerEngine, Limits, check

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
