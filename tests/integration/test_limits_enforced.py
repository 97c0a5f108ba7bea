"""Every limit value is enforced as stated or refused before anything starts.

Property tests over each limit's value space: whatever Limits accepts, the engine
really set, as read back from the cgroup and the mounts inside the sandbox. Under
gVisor, whose kernel of its own shows no cgroup files, the cgroup is read from the
host, and the program's RLIMIT_NPROC from inside.
"""

from __future__ import annotations

import glob
import json
import math

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from codedock_magic import DockerEngine, InvalidValueError, Limits, Profile, RunStatus, run
from codedock_magic.limits import MAX_PIDS, MIN_CPUS, MIN_MEMORY
from codedock_magic.local.sandbox import start_sandbox

from ..conftest import under_gvisor

PAGE = 4096

# Reads what the engine set, on cgroup v1 or v2.
PROBE = """
import json, os
def read(*paths):
    for path in paths:
        try:
            return open(path).read().split()
        except OSError:
            pass
    return None
memory = read('/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory.max')
swap = read('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes')
pids = read('/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/pids.max')
quota = read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', '/sys/fs/cgroup/cpu.max')
period = read('/sys/fs/cgroup/cpu/cpu.cfs_period_us') or quota[1:]
disk = os.statvfs('/sandbox')
print(json.dumps({
    'memory': int(memory[0]), 'swap': swap and int(swap[0]), 'pids': pids[0],
    'cpus': int(quota[0]) / int(period[0]), 'workdir': disk.f_blocks * disk.f_frsize,
}))
"""

# Each example is a real container; a failure reports its example at once rather
# than shrinking it through dozens more.
SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# At the floor of 0.01 CPUs the probe's interpreter takes about 15 s to start.
SLOW_ENOUGH = 120


# Under gVisor: the work dir and the program's process bound, from inside.
INSIDE = """
import json, os, resource
disk = os.statvfs('/sandbox')
print(json.dumps({'workdir': disk.f_blocks * disk.f_frsize,
                  'nproc': resource.getrlimit(resource.RLIMIT_NPROC)[0]}))
"""


def _seen(engine: DockerEngine, limits: Limits) -> dict[str, object]:
    if under_gvisor(engine):
        return _seen_from_host(engine, limits)
    result = run(PROBE, limits=limits.replace(timeout=SLOW_ENOUGH), engine=engine)
    assert result.status is RunStatus.OK, result.stderr
    seen: dict[str, object] = json.loads(result.stdout)
    return seen


def _seen_from_host(engine: DockerEngine, limits: Limits) -> dict[str, object]:
    sandbox = start_sandbox(engine, Profile(limits=limits.container), longest_run=10)
    try:

        def read(controller: str, name: str) -> str:
            (path,) = glob.glob(f"/sys/fs/cgroup/{controller}/**/{sandbox.id}/{name}")
            with open(path) as handle:
                return handle.read().strip()

        seen: dict[str, object] = {
            "memory": int(read("memory", "memory.limit_in_bytes")),
            "swap": int(read("memory", "memory.memsw.limit_in_bytes") or 0) or None,
            "pids": read("pids", "pids.max"),
            "cpus": int(read("cpu", "cpu.cfs_quota_us")) / int(read("cpu", "cpu.cfs_period_us")),
        }
    finally:
        sandbox.end(kill=True, wait=True)
    result = run(INSIDE, limits=limits.replace(timeout=SLOW_ENOUGH), engine=engine)
    assert result.status is RunStatus.OK, result.stderr
    seen.update(json.loads(result.stdout))
    # The container's pids leave room for gVisor's own threads; the program's
    # processes are bounded by RLIMIT_NPROC on its own uid.
    assert seen["nproc"] == limits.pids
    assert int(str(seen["pids"])) == engine.host_pids(limits.pids)
    seen["pids"] = str(limits.pids)
    return seen


@SETTINGS
@example(memory=MIN_MEMORY, cpus=MIN_CPUS, pids=4, workdir=1024**2)
@given(
    memory=st.integers(MIN_MEMORY // 2, 4 * 1024**3) | st.sampled_from([MIN_MEMORY, 2**62]),
    # Fractions under 0.1 CPU are slow to run; the floor itself is an explicit example.
    cpus=st.floats(0.1, 4.0) | st.sampled_from([MIN_CPUS / 2, 1e-12, 2.0, 1e6]),
    pids=st.integers(1, 100_000) | st.sampled_from([4, MAX_PIDS, MAX_PIDS + 1, 2**63]),
    workdir=st.integers(512 * 1024, 2 * 1024**3),
)
def test_container_limits_are_what_the_engine_sets(
    engine: DockerEngine, memory: int, cpus: float, pids: int, workdir: int
) -> None:
    try:
        limits = Limits(memory=memory, cpus=cpus, pids=pids, workdir=workdir)
        seen = _seen(engine, limits)
    except InvalidValueError as refused:
        # Refused with one line naming the limit, before anything started.
        assert refused.name in ("memory", "cpus", "pids", "workdir")
        assert "\n" not in str(refused)
        return
    assert seen["memory"] == limits.memory // PAGE * PAGE
    assert seen["swap"] in (None, seen["memory"]), "swap must be off"
    assert seen["pids"] == str(limits.pids)
    assert math.isclose(float(seen["cpus"]), limits.cpus, rel_tol=1e-4)  # type: ignore[arg-type]
    assert abs(int(seen["workdir"]) - limits.workdir) < PAGE  # type: ignore[call-overload]


@SETTINGS
@given(
    timeout=st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e12, 7 * 24 * 3600.0, "1e400", "nan", -1, 0]),
)
def test_extreme_timeouts_are_refused_or_served(engine: DockerEngine, timeout: object) -> None:
    try:
        limits = Limits(timeout=timeout)  # type: ignore[arg-type]
    except InvalidValueError as refused:
        assert refused.name == "timeout"
        return
    # A huge but accepted timeout neither crashes the supervisor nor blames the program.
    result = run("print('fine')", limits=limits, engine=engine)
    if limits.timeout >= 5:
        assert (result.status, result.stdout) == (RunStatus.OK, "fine\n")
    else:
        assert result.status in (RunStatus.OK, RunStatus.TIMEOUT)


@SETTINGS
@given(cap=st.integers(1024, 256 * 1024), printed=st.integers(0, 600 * 1024))
def test_the_output_cap_holds_for_any_size(engine: DockerEngine, cap: int, printed: int) -> None:
    code = f"import sys\nsys.stdout.write('x' * {printed})"
    result = run(code, limits=Limits(output=cap), engine=engine)
    assert result.status is RunStatus.OK
    assert result.truncated == (printed > cap)
    kept = result.stdout.count("x")
    assert kept == min(printed, cap)
