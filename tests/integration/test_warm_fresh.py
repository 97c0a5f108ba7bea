"""A warm run's program sees what a cold run's fresh python3 sees.

In a pooled container the program's interpreter is started before its code comes;
in a cold one it is started for the code. Everything the program can look at
must be the same in both, but its random numbers.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator

import pytest

from codedock_magic import Case, DockerEngine, Limits, Profile, RunStatus, check, run
from codedock_magic.local.pool import Pool

LIMITS = Limits(timeout=20, memory="128m")

# Prints one JSON object of everything a program can tell about its start, then
# fails, so that the traceback is compared too.
PROBE = textwrap.dedent(
    """
    import json, os, random, resource, sys, __main__

    def caps():
        with open("/proc/self/status") as status:
            return [line for line in status.read().splitlines()
                    if line.startswith(("Cap", "Seccomp", "NoNewPrivs"))]

    def fenced():
        # The Landlock fence: no file under /proc opens for writing.
        try:
            open("/proc/self/oom_score_adj", "w").close()
        except OSError as exc:
            return type(exc).__name__
        return "open"

    def fds():
        return sorted(os.listdir("/proc/self/fd"))

    seen = {
        "argv": sys.argv,
        "orig_argv": sys.orig_argv,
        "main": sorted((k, repr(v) if k != "__loader__" else type(v).__name__)
                       for k, v in vars(__main__).items() if k not in ("json", "os", "random",
                       "resource", "sys", "__main__", "caps", "fds", "fenced")),
        "main_is_module": sys.modules["__main__"] is __main__,
        "file": __file__,
        "name": __name__,
        "modules": sorted(sys.modules),
        "path": sys.path,
        "flags": repr(sys.flags),
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()],
        "caps": caps(),
        "fenced": fenced(),
        "rlimits": {name: resource.getrlimit(getattr(resource, name))
                    for name in dir(resource) if name.startswith("RLIMIT_")},
        "fds": fds(),
        "stdin": sys.stdin.read(),
        "oom": open("/proc/self/oom_score_adj").read(),
        "sandbox": sorted(os.listdir("/sandbox")),
        "script": open(__file__).read().count("PROBE-MARK"),
        "random": random.random(),
    }
    print(json.dumps(seen))
    def fail():
        raise ValueError("from the cell")  # PROBE-MARK
    fail()
    """
)


@pytest.fixture
def pool(engine: DockerEngine) -> Iterator[Pool]:
    warm = Pool(engine, size=1, profile=Profile(limits=LIMITS.container)).start()
    assert warm.wait_ready(timeout=30), warm.last_error
    yield warm
    warm.close()


def _seen(pool: Pool | None, engine: DockerEngine) -> tuple[dict[str, object], str]:
    result = run(PROBE, stdin="the run's own stdin\n", limits=LIMITS, engine=engine, pool=pool)
    assert result.status is RunStatus.ERROR and result.exit_code == 1, result.stderr
    return json.loads(result.stdout), result.stderr


def test_a_warm_program_sees_what_a_cold_one_sees(engine: DockerEngine, pool: Pool) -> None:
    cold, cold_err = _seen(None, engine)
    warm, warm_err = _seen(pool, engine)
    assert pool.hits == 1
    assert pool.wait_ready(timeout=30)
    again, again_err = _seen(pool, engine)
    assert pool.hits == 2
    # Each container has its own uid: the ids and the env's and HOME's owner
    # aside, which each run's own uid explains, the rest must match key by key.
    uid = cold["ids"][0]  # type: ignore[index]
    for seen in (warm, again):
        assert seen["ids"] == [seen["ids"][0]] * 4 + [[]]  # type: ignore[index]
        assert seen["ids"][0] != 0  # type: ignore[index]
    for key in cold:
        if key in ("random", "ids"):
            continue
        assert warm[key] == cold[key], key
        assert again[key] == cold[key], key
    assert cold["ids"] == [uid] * 4 + [[]]
    assert warm_err == cold_err == again_err
    assert 'File "/sandbox/main.py", line ' in cold_err
    assert cold_err.count('File "') == 2, cold_err  # the cell's two frames, nothing more
    # Seeded once the code came, from the kernel's entropy: never the same twice.
    assert len({cold["random"], warm["random"], again["random"]}) == 3


AGE = textwrap.dedent(
    """
    import os
    ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
    print(float(open("/proc/uptime").read().split()[0]) - ticks / os.sysconf("SC_CLK_TCK"))
    """
)


def test_a_warm_program_was_started_before_its_code_came(engine: DockerEngine, pool: Pool) -> None:

    time.sleep(1.5)
    warm = run(AGE, limits=LIMITS, engine=engine, pool=pool)
    cold = run(AGE, limits=LIMITS, engine=engine)
    assert pool.hits == 1
    assert float(warm.stdout) >= 1.0 > float(cold.stdout), (warm.stdout, cold.stdout)


def test_a_warm_program_gets_its_values_and_sends_one_back(
    engine: DockerEngine, pool: Pool
) -> None:
    code = "import sys\ntotal = sum(numbers)\nprint(total, file=sys.stderr)\n"
    for chosen in (pool, None):
        result = run(
            code,
            limits=LIMITS,
            engine=engine,
            pool=chosen,
            values={"numbers": [1, 2, 3]},
            returns="total",
        )
        assert result.status is RunStatus.OK, result.stderr
        assert result.stderr == "6\n"
        assert result.value == 6
    assert pool.hits == 1


def test_a_warm_program_ends_with_every_status(engine: DockerEngine, pool: Pool) -> None:
    cases = {
        "import sys; sys.exit(3)": (RunStatus.ERROR, 3, ""),
        "raise SystemExit('bye')": (RunStatus.ERROR, 1, "bye\n"),
        "x = (": (RunStatus.ERROR, 1, "SyntaxError"),
        "raise KeyboardInterrupt": (RunStatus.SIGNALED, None, "KeyboardInterrupt"),
        "import atexit; atexit.register(print, 'at exit'); 1/0": (
            RunStatus.ERROR,
            1,
            "ZeroDivisionError",
        ),
    }
    for code, (status, exit_code, err) in cases.items():
        outcomes = []
        for chosen in (pool, None):
            result = run(code, limits=LIMITS, engine=engine, pool=chosen)
            assert result.status is status, (code, result)
            if exit_code is not None:
                assert result.exit_code == exit_code, (code, result)
            assert err in result.stderr, (code, result.stderr)
            outcomes.append((result.stdout, result.stderr, result.exit_code, result.signal))
            assert pool.wait_ready(timeout=30)
        assert outcomes[0] == outcomes[1], code


# Every process of the program's uid but itself, zombies included: a case must
# find none, whatever ran before it in the container.
OTHERS = textwrap.dedent(
    """
    import os
    others = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/status") as status:
                    lines = status.read().splitlines()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in lines if ":" in line)
            if fields["Uid"].split()[0] == str(os.getuid()):
                others.append((name, fields["Name"].strip(), fields["State"].strip()))
    print(others)
    """
)


def test_cases_in_a_warm_container_find_no_process_of_their_uid(
    engine: DockerEngine, pool: Pool
) -> None:
    # A run with cases does not use the waiting interpreter: it must be gone,
    # reaped too, before the first case looks.
    cases = [Case(name=f"case {n}", stdin="", expected="[]\n") for n in range(3)]
    result = check(OTHERS, cases, limits=LIMITS, engine=engine, pool=pool)
    assert pool.hits >= 1
    for case in result.cases:
        assert case.verdict == "passed", (case.name, case.stdout)
