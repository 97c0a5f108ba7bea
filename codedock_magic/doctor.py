"""``codedock doctor``: each promise a sandbox makes, checked on this machine, now.

An administrator runs it after a deploy; ``%sandbox_doctor`` runs it from a
notebook. It asks the engine (or, in service mode, the service) what it can, then
runs a probe in a real sandbox, with the limits a cell would get, and reads the
facts from inside: interfaces, ids, capabilities, the file system, the cgroup's
limits, the seccomp filter and the masked host paths. Each promise becomes one
row, ok or a one-line reason; :func:`all_hold` says whether to exit 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .core.errors import CodedockError, ImageNotFoundError
from .core.limits import Limits, format_size
from .core.profile import DEFAULT_IMAGE
from .core.request import Backend
from .engines import Engine, connect
from .local.backend import LocalBackend
from .remote.client import ServiceBackend, service_from_env
from .runner import run

__all__ = ["Finding", "all_hold", "diagnose", "report"]

#: Host paths a sandbox must not read (the engine's masked list and ours).
MASKED = (
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/cmdline",
    "/proc/modules",
    "/proc/sys/kernel/random/boot_id",
    "/proc/slabinfo",
    "/sys/firmware",
)

# Stand-alone: it runs with the image's python3, as the sandbox user, and prints
# one JSON object of facts. Judging them is the host's job, below.
PROBE = (
    f"MASKED = {MASKED!r}\n"
    + r"""
import ctypes, errno, json, os, socket

facts = {"uid": os.getuid(), "euid": os.geteuid()}
facts["interfaces"] = sorted(name for _, name in socket.if_nameindex())
status = {}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    status[key] = value.strip()
for key in ("CapEff", "CapPrm", "NoNewPrivs", "Seccomp", "Seccomp_filters"):
    facts[key] = status.get(key, "")
libc = ctypes.CDLL(None, use_errno=True)
# io_uring_setup, 425 on x86_64 and aarch64 alike: our filter refuses it.
facts["io_uring"] = [libc.syscall(425, 0, 0), os.strerror(ctypes.get_errno())]

def write_error(path):
    try:
        with open(path, "a"):
            return 0
    except OSError as exc:
        return exc.errno

facts["root_write"] = write_error("/codedock-doctor")
facts["mount_root"] = ""
facts["cgroup_mounts"] = {}
for line in open("/proc/self/mountinfo"):
    fields = line.split()
    if fields[4] == "/":
        facts["mount_root"] = fields[5]
    elif line.split(" - ")[1].split()[0] in ("cgroup", "cgroup2"):
        facts["cgroup_mounts"][fields[4]] = fields[5]

def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None

cgroup = {}
for name, paths in {
    "memory": ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
    "swap": ["/sys/fs/cgroup/memory.swap.max"],
    "memsw": ["/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"],
    "pids": ["/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"],
}.items():
    for path in paths:
        value = read(path)
        if value is not None:
            cgroup[name] = value
            cgroup[name + "_path"] = path
            break
facts["cgroup"] = cgroup
facts["swap_total"] = next(
    (line.split()[1] for line in open("/proc/meminfo") if line.startswith("SwapTotal:")), "0"
)
facts["cgroup_write"] = write_error(cgroup.get("memory_path", "/sys/fs/cgroup/memory.max"))
facts["cgroup_dir_write"] = write_error("/sys/fs/cgroup/codedock-doctor")

masked = {}
for path in MASKED:
    try:
        if os.path.isdir(path):
            masked[path] = len(os.listdir(path))
        else:
            with open(path, "rb") as f:
                masked[path] = len(f.read(4096))
    except OSError as exc:
        masked[path] = errno.errorcode.get(exc.errno, str(exc.errno))
facts["masked"] = masked
print(json.dumps(facts))
"""
)


@dataclass(frozen=True)
class Finding:
    """One promise and whether it holds.

    Attributes:
        promise: what is promised, in a few words.
        ok: whether it holds.
        detail: what was seen, or the one-line reason it does not hold.
    """

    promise: str
    ok: bool
    detail: str


def all_hold(findings: Sequence[Finding]) -> bool:
    """Whether every promise holds (``codedock doctor`` then exits 0)."""
    return bool(findings) and all(finding.ok for finding in findings)


def report(findings: Sequence[Finding]) -> str:
    """The findings as a table: a row each, then one line that sums them up."""
    width = max((len(finding.promise) for finding in findings), default=0)
    rows = [
        f"{'ok' if finding.ok else 'FAIL':<4}  {finding.promise:<{width}}  {finding.detail}"
        for finding in findings
    ]
    failed = sum(not finding.ok for finding in findings)
    rows.append(
        f"all {len(findings)} promises hold"
        if not failed
        else f"{failed} of {len(findings)} promises do not hold"
    )
    return "\n".join(rows)


def diagnose(
    *,
    image: str = DEFAULT_IMAGE,
    limits: Limits | None = None,
    engine: Engine | None = None,
    backend: Backend | None = None,
) -> list[Finding]:
    """Check every promise, as a cell with ``limits`` in ``image`` would meet them.

    Args:
        image: the image a cell runs in.
        limits: the limits a cell gets; :class:`Limits` defaults when omitted (a
            service applies its own defaults and says which).
        engine: the engine to check; by default the one from the environment,
            unless ``$CODEDOCK_SERVICE_URL`` names a service.
        backend: what runs cells (a kernel's own); a :class:`ServiceBackend`
            puts the service's rows first.

    Never raises for a failing promise: each becomes a :class:`Finding`.
    """
    findings: list[Finding] = []
    service = backend if isinstance(backend, ServiceBackend) else None
    if backend is None and engine is None:
        service = service_from_env()
        backend = service
    if service is not None:
        if not _service_rows(service, findings):
            return findings
    else:
        try:
            engine = engine or connect()
            engine.ping()
            findings.append(Finding("the engine answers", True, f"at {engine.address}"))
        except CodedockError as exc:
            findings.append(Finding("the engine answers", False, str(exc)))
            return findings
        try:
            present = engine.image_exists(image)
        except CodedockError as exc:
            present, why = False, str(exc)
        else:
            why = str(ImageNotFoundError(image))
        findings.append(Finding("the image is there", present, image if present else why))
        if not present:
            return findings
        backend = backend or LocalBackend(engine)
    try:
        result = run(PROBE, limits=limits, image=image, backend=backend)
    except CodedockError as exc:
        findings.append(Finding("a sandbox runs", False, str(exc)))
        return findings
    if not result.ok:
        tail = result.stderr.strip().splitlines()[-1:] or [""]
        findings.append(Finding("a sandbox runs", False, f"{result.describe()}: {tail[0]}"))
        return findings
    facts = json.loads(result.stdout)
    findings.extend(check(facts, result.limits))
    return findings


def _service_rows(service: ServiceBackend, findings: list[Finding]) -> bool:
    try:
        info = service.info()
    except CodedockError as exc:
        findings.append(Finding("the service answers", False, str(exc)))
        return False
    findings.append(Finding("the service answers", True, f"at {service.url}"))
    groups = ", ".join(info.get("groups", [])) or "none"
    findings.append(
        Finding("the user it sees", bool(info.get("user")), f"{info.get('user')} ({groups})")
    )
    ceilings = info.get("ceilings", {})
    shown = [
        f"max_{name}={_shown(name, value)}" for name, value in ceilings.items() if value is not None
    ]
    shown.append(f"allowed_images={info.get('allowed_images') or 'any'}")
    findings.append(Finding("its ceilings", True, ", ".join(shown)))
    return True


def _shown(name: str, value: Any) -> str:
    # The service sends every ceiling as a number; sizes are bytes.
    if name in ("memory", "output", "workdir"):
        return format_size(int(value))
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def check(facts: dict[str, Any], limits: Limits) -> list[Finding]:
    """Judge the probe's facts against the promises and the limits the run was given."""
    rows: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
        ("no network but lo", lambda: _interfaces(facts)),
        ("not root", lambda: _not_root(facts)),
        ("no capabilities", lambda: _capabilities(facts)),
        ("no-new-privileges", lambda: _no_new_privileges(facts)),
        ("the root filesystem is read-only", lambda: _read_only(facts)),
        ("the memory limit, with no swap", lambda: _memory(facts, limits)),
        ("the pids limit", lambda: _pids(facts, limits)),
        ("the seccomp filter", lambda: _seccomp(facts)),
        ("/sys/fs/cgroup cannot be written", lambda: _cgroup_read_only(facts)),
        ("host paths are masked", lambda: _masked(facts)),
    ]
    findings = []
    for promise, judge in rows:
        try:
            ok, detail = judge()
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            ok, detail = False, f"the probe did not report it ({type(exc).__name__}: {exc})"
        findings.append(Finding(promise, ok, detail))
    return findings


def _interfaces(facts: dict[str, Any]) -> tuple[bool, str]:
    names = list(facts["interfaces"])
    return names == ["lo"], "interfaces: " + ", ".join(names)


def _not_root(facts: dict[str, Any]) -> tuple[bool, str]:
    uid, euid = int(facts["uid"]), int(facts["euid"])
    return uid != 0 and euid != 0, f"uid {uid}, euid {euid}"


def _capabilities(facts: dict[str, Any]) -> tuple[bool, str]:
    effective, permitted = int(facts["CapEff"], 16), int(facts["CapPrm"], 16)
    return (
        effective == permitted == 0,
        f"effective {facts['CapEff']}, permitted {facts['CapPrm']}",
    )


def _no_new_privileges(facts: dict[str, Any]) -> tuple[bool, str]:
    return facts["NoNewPrivs"] == "1", f"NoNewPrivs {facts['NoNewPrivs']}"


def _read_only(facts: dict[str, Any]) -> tuple[bool, str]:
    # errno 30 is EROFS: the write was refused by the mount, not by permissions.
    options = str(facts["mount_root"]).split(",")
    ok = int(facts["root_write"]) == 30 and "ro" in options
    return ok, f"mounted {facts['mount_root']}, a write got errno {facts['root_write']}"


def _memory(facts: dict[str, Any], limits: Limits) -> tuple[bool, str]:
    cgroup = facts["cgroup"]
    memory = cgroup["memory"]
    ok = memory.isdigit() and int(memory) == limits.memory
    seen = f"{format_size(int(memory)) if memory.isdigit() else memory}"
    detail = f"{seen} (asked {format_size(limits.memory)})"
    if "swap" in cgroup:
        no_swap = cgroup["swap"] == "0"
        detail += f", swap {cgroup['swap']}"
    elif "memsw" in cgroup:
        no_swap = cgroup["memsw"] == memory
        memsw = cgroup["memsw"]
        detail += f", memory and swap {format_size(int(memsw)) if memsw.isdigit() else memsw}"
    else:
        # No swap accounting: only a host without swap keeps the promise.
        no_swap = str(facts["swap_total"]) == "0"
        detail += f", swap not accounted, the host has {facts['swap_total']} kB"
    return ok and no_swap, detail


def _pids(facts: dict[str, Any], limits: Limits) -> tuple[bool, str]:
    pids = facts["cgroup"]["pids"]
    return pids.isdigit() and int(pids) == limits.pids, f"{pids} (asked {limits.pids})"


def _seccomp(facts: dict[str, Any]) -> tuple[bool, str]:
    result, reason = facts["io_uring"]
    ok = facts["Seccomp"] == "2" and result == -1 and reason == "Operation not permitted"
    return ok, (
        f"mode {facts['Seccomp']}, {facts.get('Seccomp_filters') or '?'} filter(s); "
        f"io_uring_setup: {reason}"
    )


def _cgroup_read_only(facts: dict[str, Any]) -> tuple[bool, str]:
    # The cgroup file systems refuse by their mounts, not only by their files' owner.
    mounts: dict[str, str] = facts["cgroup_mounts"]
    writable = [path for path, options in mounts.items() if "ro" not in options.split(",")]
    refused, refused_dir = int(facts["cgroup_write"]), int(facts["cgroup_dir_write"])
    if writable:
        return False, "mounted read-write: " + ", ".join(sorted(writable))
    if not refused:
        return False, "a write to its memory limit went through"
    if not refused_dir:
        return False, "a new file in /sys/fs/cgroup was made"
    return bool(mounts), (
        f"{len(mounts)} cgroup mount(s), all read-only; writes got errno {refused}, {refused_dir}"
    )


def _masked(facts: dict[str, Any]) -> tuple[bool, str]:
    masked: dict[str, Any] = facts["masked"]
    readable = [path for path, seen in masked.items() if isinstance(seen, int) and seen > 0]
    if readable:
        return False, "readable: " + ", ".join(readable)
    return True, f"{len(masked)} paths empty or refused"
