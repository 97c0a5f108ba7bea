"""Sandboxes as Kubernetes Pods: the Pod a run gets, hardened field by field like Docker's.

:mod:`.pods` builds that Pod as a plain manifest from the engine seam's
:class:`~codedock_magic.engines.base.SandboxSpec` and the engine's options, and
checks a Pod for every hardening field (what a test kubelet refuses without). It
is pure: it imports no Kubernetes client, so it works without the
``codedock-magic[kubernetes]`` extra. Only the engine module that talks to an API
server, :mod:`.engine` (the engine registered as ``kubernetes``), imports the
``kubernetes`` client (the import contracts in pyproject.toml say so).
"""

from __future__ import annotations

from .pods import (
    ENGINE_NAME,
    PULL_POLICIES,
    OwnerReference,
    PodOptions,
    build_pod,
    hardening_faults,
    pod_labels,
    split_labels,
)

__all__ = [
    "ENGINE_NAME",
    "PULL_POLICIES",
    "OwnerReference",
    "PodOptions",
    "build_pod",
    "hardening_faults",
    "pod_labels",
    "split_labels",
]
