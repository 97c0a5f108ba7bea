"""The Docker engine's options, and a supervisor that is the sandbox's PID 1."""

from __future__ import annotations

from codedock_magic import DockerEngine, Limits, run
from codedock_magic.core.profile import Profile
from codedock_magic.engines import SandboxSpec
from codedock_magic.supervisor import supervisor_command

ZOMBIES = """
import os, time
print(open('/proc/1/cmdline').read().split('\\0')[0])
child = os.fork()
if child == 0:
    if os.fork() == 0:
        time.sleep(0.2)
        os._exit(0)
    os._exit(0)
os.waitpid(child, 0)
time.sleep(1.0)
zombies = 0
for name in os.listdir('/proc'):
    if name.isdigit():
        try:
            with open(f'/proc/{name}/stat') as stat:
                zombies += stat.read().rsplit(')', 1)[1].split()[0] == 'Z'
        except OSError:
            pass
print('zombies', zombies)
"""


def test_as_pid_1_the_supervisor_reaps_the_programs_orphans(engine: DockerEngine) -> None:
    without_init = DockerEngine(init=False)
    result = run(ZOMBIES, engine=without_init, limits=Limits(timeout=20))
    assert result.ok, result.stderr
    assert result.stdout.splitlines() == ["python3", "zombies 0"]


def test_with_the_engines_init_the_supervisor_is_not_pid_1(engine: DockerEngine) -> None:
    result = run(ZOMBIES, engine=engine, limits=Limits(timeout=20))
    assert result.ok, result.stderr
    first, zombies = result.stdout.splitlines()
    assert first != "python3" and zombies == "zombies 0"


def test_the_runtime_option_reaches_the_host_config(engine: DockerEngine) -> None:
    runc = DockerEngine(runtime="runc")
    container = runc.create(SandboxSpec(Profile(), supervisor_command()))
    try:
        assert runc.api.inspect_container(container)["HostConfig"]["Runtime"] == "runc"
    finally:
        runc.remove(container)
