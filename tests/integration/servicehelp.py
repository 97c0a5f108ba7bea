"""A real ``codedock serve`` process for the tests, on 127.0.0.1 and a free port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from codedock_magic import DockerEngine
from codedock_magic.labels import OWNER_PID

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}


class Service:
    """``codedock serve`` with a config file written from ``settings``."""

    def __init__(self, folder: Path, **settings: Any) -> None:
        self.folder = folder
        self.audit = folder / "audit.log"
        merged: dict[str, Any] = {
            "port": 0,
            "api_tokens": TOKENS,
            "audit_log": str(self.audit),
            "db_url": f"sqlite:///{folder / 'gradebook.sqlite'}",
            "metrics_token": "tok-metrics",
            "pool_size": 1,
            **settings,
        }
        self.config = folder / "codedock_service_config.py"
        self.config.write_text(
            "".join(f"c.SandboxService.{name} = {value!r}\n" for name, value in merged.items())
        )
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, port: int = 0) -> Service:
        """Start it and wait until it answers; ``port`` 0 takes a free one."""
        args = [sys.executable, "-m", "codedock_magic", "serve", "--config", str(self.config)]
        if port:
            args.append(f"--port={port}")
        self.log = (self.folder / "service.log").open("a")
        seen = self.log.tell()
        self.process = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, text=True, env=_env()
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.findall(r"on (http://127\.0\.0\.1:\d+)", self.output()[seen:])
            if found:
                self.url = found[-1]
                break
            if self.process.poll() is not None:
                raise AssertionError("codedock serve exited: " + self.output())
            time.sleep(0.05)
        else:
            raise AssertionError("codedock serve did not listen: " + self.output())
        assert requests.get(self.url + "/api/health", timeout=5).json()["ok"] is True
        return self

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return (self.folder / "service.log").read_text()

    def containers(self, engine: DockerEngine) -> list[str]:
        """Containers this service started that still exist."""
        return [c.id for c in engine.list({OWNER_PID: str(self.pid)})]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None) is not None:
            self.log.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_SERVICE_URL"):
        env.pop(name, None)
    return env


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(predicate: Any, within: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
