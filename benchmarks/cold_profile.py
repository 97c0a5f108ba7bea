"""Where a cold run spends its time: the engine's calls, the argv, the supervisor's setup.

    .venv/bin/python benchmarks/cold_profile.py [--runs N]

Three parts, each a median over ``--runs`` runs in one process:

1. every HTTP call a cold ``run()`` makes to the engine, counted and timed, and
   the container's own steps (create, subscribe to events, attach, start, the
   supervisor's setup until it says ready, the run, the removal);
2. what the command sent with every create costs: a create (and its removal)
   with the supervisor and runtime in argv, against one with a short command;
3. what the supervisor does before it reads its code, timed inside a real
   sandbox: the interpreter's start, compiling its source, the seccomp filter,
   the Landlock ruleset, laying out the runtime, the killer process.

Then cold runs with the supervisor delivered in argv and, where the image
carries it, from the image, taking turns. It reports; it never fails on a number.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from codedock_magic import DEFAULT_IMAGE, Limits, run
from codedock_magic.core.profile import Profile
from codedock_magic.engines.base import SandboxSpec
from codedock_magic.engines.docker import DockerEngine
from codedock_magic.local.sandbox import ReadyWait
from codedock_magic.supervisor import _SOURCE, SUPERVISOR_HASH, baked_command, supervisor_command

CODE = "print(1)"
IMAGE = DEFAULT_IMAGE

# Runs inside the sandbox as root with CAP_SETUID and CAP_SETGID, like the
# supervisor: it loads the supervisor's source without running it, then times
# each step of its setup.
PROBE = r"""
import sys, time
t = time.perf_counter
source, blob = sys.argv[1], sys.argv[2]
out = {}
a = t(); code = compile(source, "<supervisor>", "exec"); out["compile the supervisor"] = t() - a
space = {"__name__": "probe"}
a = t(); exec(code, space); out["import its modules"] = t() - a
a = t(); built = space["build_filter"](); out["build the seccomp filter"] = t() - a
a = t(); space["build_fence"](built[1]); out["build the Landlock ruleset"] = t() - a
a = t(); space["lay_out_runtime"](blob); out["lay out the runtime files"] = t() - a
a = t(); killer = space["Killer"](54321); out["fork the killer"] = t() - a
import subprocess
starts = []
for _ in range(5):
    a = t(); subprocess.run(["python3", "-I", "-S", "-c", "pass"]); starts.append(t() - a)
starts.sort(); out["python3 -I -S -c pass"] = starts[2]
print(json.dumps(out) if "json" in sys.modules else repr(out))
"""


def median(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


class Recorder:
    """Times every HTTP call docker-py's client makes (its Session.send)."""

    def __init__(self, api: Any) -> None:
        self.calls: list[tuple[str, float]] = []
        original = api.send

        def send(request: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(request, **kwargs)
            finally:
                path = request.path_url.split("?")[0]
                parts = [p for p in path.split("/") if p]
                # /v1.41/containers/ID/start -> POST containers/start
                parts = parts[1:] if parts and parts[0].startswith("v1") else parts
                if len(parts) >= 3 and parts[0] in ("containers", "images"):
                    parts = [parts[0], *parts[2:]]
                name = f"{request.method} {'/'.join(parts)}"
                self.calls.append((name, time.perf_counter() - start))

        api.send = send


def engine_calls(engine: DockerEngine, runs: int) -> None:
    recorder = Recorder(engine.api)
    engine.cpus()
    run(CODE, image=IMAGE, engine=engine)  # the watchdog and the version check, once
    per_run: list[int] = []
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        recorder.calls.clear()
        run(CODE, image=IMAGE, engine=engine)
        time.sleep(0.3)  # the removal is confirmed in the background
        per_run.append(len(recorder.calls))
        for name, seconds in recorder.calls:
            times[name].append(seconds)
    print(f"\nHTTP calls of one cold run() (median {statistics.median(per_run):.0f} per run)")
    print("| call | per run | median |\n|---|---:|---:|")
    for name, values in sorted(times.items(), key=lambda item: -median(item[1])):
        print(f"| `{name}` | {len(values) / runs:.1f} | {median(values):.1f} ms |")

    profile = Profile(IMAGE)
    commands = {
        "argv": supervisor_command(60, profile.limits),
        "baked": baked_command(60, profile.limits),
    }
    if engine.carried_supervisor(profile.image) != SUPERVISOR_HASH:
        del commands["baked"]
    steps = {name: defaultdict(list) for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            _timed_launch(engine, profile, steps[name], command)()
    print("\nthe container's steps, one cold sandbox, by how the supervisor is delivered")
    print("| step | " + " | ".join(commands) + " |\n|---|" + "---:|" * len(commands))
    for step in steps["argv"]:
        cells = " | ".join(f"{median(steps[name][step]):.1f} ms" for name in commands)
        print(f"| {step} | {cells} |")


def _timed_launch(
    engine: DockerEngine, profile: Profile, steps: dict[str, list[float]], command: list[str]
) -> Callable[[], None]:
    def go() -> None:
        t = time.perf_counter
        spec = SandboxSpec(profile, command)
        a = t()
        container, _ = engine.claim(spec)
        steps["create"].append(t() - a)
        a = t()
        watch = engine.watch(container)
        steps["subscribe to its events"].append(t() - a)
        a = t()
        channel = engine.attach(container)
        steps["attach"].append(t() - a)
        a = t()
        engine.start(container)
        steps["start"].append(t() - a)
        a = t()
        channel.send(b"h")
        from codedock_magic.engines.base import Sandbox

        box = Sandbox(
            container,
            channel,
            watch,
            profile,
            kill=lambda: engine.kill(container),
            remove=lambda: engine.remove(container),
        )
        ReadyWait(box).wait()
        steps["after start: the supervisor sets up until ready"].append(t() - a)
        a = t()
        box.end(wait=True)
        steps["end and wait for the removal"].append(t() - a)

    return go


def argv_cost(engine: DockerEngine, runs: int) -> None:
    full = supervisor_command(60)
    short = ["python3", "-I", "-S", "-c", "pass"]
    print(f"\nthe baked command: {sum(len(part.encode()) + 1 for part in baked_command(60))} bytes")
    size = sum(len(part.encode()) + 1 for part in full)
    times: dict[str, list[float]] = defaultdict(list)
    profile = Profile(IMAGE)
    for _ in range(runs):
        for name, command in (("argv", full), ("short", short)):
            a = time.perf_counter()
            container = engine.create(SandboxSpec(profile, command))
            times[name + " create"].append(time.perf_counter() - a)
            a = time.perf_counter()
            engine.start(container)
            times[name + " start"].append(time.perf_counter() - a)
            engine.remove(container)
    print(f"\nthe command sent with every create: {size} bytes")
    print("| command | create | start |\n|---|---:|---:|")
    for name in ("argv", "short"):
        print(
            f"| {name} | {median(times[name + ' create']):.1f} ms "
            f"| {median(times[name + ' start']):.1f} ms |"
        )


def supervisor_setup(engine: DockerEngine, runs: int) -> None:
    blob = supervisor_command(60)[7]
    results: dict[str, list[float]] = defaultdict(list)
    profile = Profile(IMAGE)
    for _ in range(runs):
        spec = SandboxSpec(profile, ["python3", "-I", "-c", "import json\n" + PROBE, _SOURCE, blob])
        box = engine.launch(spec)
        out = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunks = box.channel.receive(0.5)
            if chunks is None:
                break
            out += b"".join(data for stream, data in chunks if stream == "stdout")
        box.end(wait=True)
        found = json.loads(out.decode().strip().splitlines()[-1])
        for name, seconds in found.items():
            results[name].append(seconds)
    print("\nthe supervisor before it reads its code, inside a sandbox (1 CPU)")
    print("| step | median |\n|---|---:|")
    for name, values in results.items():
        print(f"| {name} | {median(values):.1f} ms |")


def cold_runs(engine: DockerEngine, client: docker.DockerClient, runs: int) -> None:
    limits = Limits()

    def docker_run() -> None:
        client.containers.run(
            DEFAULT_IMAGE,
            ["python3", "-c", CODE],
            remove=True,
            network_mode="none",
            mem_limit=limits.memory,
            memswap_limit=limits.memory,
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,
        )

    sys.path.insert(0, str(Path(__file__).parent))
    from bench import magic_shell

    shell = magic_shell(pool_size=0)

    def cell() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            shell.run_cell_magic("sandbox", f"--no-widgets --image {IMAGE}", CODE)

    sides: dict[str, Callable[[], object]] = {
        "docker-py containers.run": docker_run,
        "runner, cold": lambda: run(CODE, image=IMAGE, engine=engine),
        "%%sandbox end to end, cold": cell,
    }
    carried = DockerEngine.carried_supervisor
    modes: dict[str, Callable[..., str]] = {"argv": lambda self, image: "", "baked": carried}
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        for name, action in sides.items():
            for mode, lookup in modes.items():
                if name.startswith("docker-py") and mode == "baked":
                    continue
                label = name if name.startswith("docker-py") else f"{name} ({mode})"
                DockerEngine.carried_supervisor = lookup  # type: ignore[method-assign]
                try:
                    a = time.perf_counter()
                    action()
                    times[label].append(time.perf_counter() - a)
                finally:
                    DockerEngine.carried_supervisor = carried  # type: ignore[method-assign]
    base = median(times["docker-py containers.run"])
    print("\ncold runs, taking turns")
    print("| what | median | vs containers.run |\n|---|---:|---:|")
    for name, values in times.items():
        print(f"| {name} | {median(values):.1f} ms | {median(values) / base:.2f}x |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="runs per row (median taken)")
    parser.add_argument(
        "--parts", default="calls,argv,setup,cold", help="which parts, comma-separated"
    )
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the sandbox image")
    args = parser.parse_args()
    global IMAGE
    IMAGE = args.image
    engine = DockerEngine()
    client = docker.from_env(version="auto")
    parts = set(args.parts.split(","))
    if "calls" in parts:
        engine_calls(engine, args.runs)
    if "argv" in parts:
        argv_cost(engine, args.runs)
    if "setup" in parts:
        supervisor_setup(engine, args.runs)
    if "cold" in parts:
        cold_runs(engine, client, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
