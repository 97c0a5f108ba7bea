"""A real JupyterHub for the tests, with the shipped fragment loaded, and a kernel client.

The hub runs as root on 127.0.0.1 with configurable-http-proxy from npm, the
dummy authenticator and LocalProcessSpawner. Its users are real system users
(made by ``scripts/dev.sh``, outside the ``docker`` group), whose servers run from
a world-readable virtualenv. Kernels are reached as a browser reaches them:
through the proxy, the server's REST API and the kernel's websocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from .servicehelp import wait_for

# The fragment as an admin finds it: `codedock hub-config` names the packaged file.
FRAGMENT = Path(
    subprocess.run(
        [sys.executable, "-m", "codedock_magic", "hub-config"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
)
HUB_DIR = Path(os.environ.get("CODEDOCK_HUB_DIR", "/opt/codedock-test"))
PROXY = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
USER_VENV = HUB_DIR / "user-venv"
USERS = ("cdk-alice", "cdk-bob", "cdk-teach")
ADMIN_TOKEN = uuid.uuid4().hex
METRICS_TOKEN = uuid.uuid4().hex


def missing() -> str:
    """Why the hub cannot run here, or ``""``."""
    if os.geteuid() != 0:
        return "the hub tests need root, to spawn servers as system users"
    if not PROXY.exists():
        return f"no configurable-http-proxy at {PROXY}; run bash scripts/dev.sh test"
    if not (USER_VENV / "bin" / "jupyterhub-singleuser").exists():
        return f"no users' virtualenv at {USER_VENV}; run bash scripts/dev.sh test"
    for user in USERS:
        if subprocess.run(["id", user], capture_output=True).returncode != 0:
            return f"no system user {user}; run bash scripts/dev.sh test"
    return ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


#: Where a service apart from the hub listens: loopback too (all of 127.0.0.0/8 is),
#: but not the hub's address.
APART_HOST = "127.0.0.2"


class Hub:
    """A JupyterHub process, its proxy, and the codedock service.

    The hub manages the service, or, with ``apart``, the service runs as a process
    of its own on :data:`APART_HOST` and the hub knows it only by its URL.
    """

    def __init__(
        self, folder: Path, service_settings: dict[str, Any], *, apart: bool = False
    ) -> None:
        self.folder = folder
        self.apart = apart
        self.port, self.hub_port, self.proxy_port = free_port(), free_port(), free_port()
        self.service_host = APART_HOST if apart else "127.0.0.1"
        self.service_port = free_port(self.service_host)
        self.service_token = uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}"
        self.service_url = f"http://{self.service_host}:{self.service_port}"
        self.audit = folder / "audit.log"
        settings = {
            "audit_log": str(self.audit),
            "metrics_token": METRICS_TOKEN,
            **service_settings,
        }
        self.service_config = folder / "codedock_service_config.py"
        self.service_config.write_text(
            "".join(f"c.SandboxService.{k} = {v!r}\n" for k, v in settings.items())
        )
        secret = folder / "cookie_secret"
        secret.write_bytes(os.urandom(32).hex().encode())
        secret.chmod(0o600)
        # An admin's own hub config: its ip, port, authenticator and spawner, and a
        # service of its own; the fragment comes last.
        (folder / "jupyterhub_config.py").write_text(
            f"""
c = get_config()
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {self.hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_port}"
c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
c.JupyterHub.db_url = "sqlite:///{folder}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {str(secret)!r}
c.JupyterHub.pid_file = {str(folder / "jupyterhub.pid")!r}
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {uuid.uuid4().hex!r}
c.Authenticator.allowed_users = {set(USERS)!r}
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [{str(USER_VENV / "bin" / "jupyterhub-singleuser")!r}]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.JupyterHub.load_groups = {{"teachers": {{"users": ["cdk-teach"]}}}}
c.JupyterHub.services = [{{"name": "test-admin", "api_token": {ADMIN_TOKEN!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "test-admin",
        "services": ["test-admin"],
        "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "access:servers",
                   "read:metrics"],
    }}
]
load_subconfig({str(FRAGMENT)!r})
"""
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.service: subprocess.Popen[bytes] | None = None

    def start(self) -> Hub:
        env = {name: value for name, value in os.environ.items() if name != "CODEDOCK_SERVICE_URL"}
        if self.apart:
            env["CODEDOCK_SERVICE_URL"] = self.service_url
            env["CODEDOCK_SERVICE_TOKEN"] = self.service_token
        else:
            env["CODEDOCK_SERVICE_PORT"] = str(self.service_port)
            env["CODEDOCK_SERVICE_CONFIG"] = str(self.service_config)
        hub = Path(sys.executable).with_name("jupyterhub")
        self.log = (self.folder / "hub.log").open("ab")
        self.process = subprocess.Popen(
            [str(hub), "-f", str(self.folder / "jupyterhub_config.py")],
            cwd=self.folder,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not wait_for(self._answers, 90, step=0.25):
            raise AssertionError("the hub did not start:\n" + self.output())
        if self.apart:
            self._start_apart()
        if not wait_for(self._service_answers, 30, step=0.25):
            raise AssertionError("the codedock service did not start:\n" + self.output())
        return self

    def _start_apart(self) -> None:
        # As an admin starts it on another machine: told where the hub's API is, its
        # own token, and its name (which makes it ask for its own access scope).
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
        env = {
            **inherited,
            "JUPYTERHUB_API_URL": f"http://127.0.0.1:{self.hub_port}/hub/api",
            "JUPYTERHUB_API_TOKEN": self.service_token,
            "JUPYTERHUB_SERVICE_NAME": "codedock",
        }
        self.service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "codedock_magic",
                "serve",
                f"--ip={self.service_host}",
                f"--port={self.service_port}",
                f"--config={self.service_config}",
            ],
            cwd=self.folder,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError("the hub exited:\n" + self.output())
        try:
            return requests.get(self.url + "/hub/api/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _service_answers(self) -> bool:
        try:
            return requests.get(self.service_url + "/api/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def output(self) -> str:
        return (self.folder / "hub.log").read_text(errors="replace")[-6000:]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {ADMIN_TOKEN}"}
        return requests.request(
            method, self.url + "/hub/api" + path, headers=headers, timeout=30, **kwargs
        )

    def add_users(self) -> None:
        answer = self.api("POST", "/users", json={"usernames": list(USERS)})
        assert answer.status_code in (201, 409), answer.text

    def start_server(self, user: str) -> None:
        answer = self.api("POST", f"/users/{user}/server")
        assert answer.status_code in (201, 202, 400), answer.text

        def ready() -> bool:
            model = self.api("GET", f"/users/{user}").json()
            server = model.get("servers", {}).get("", {})
            return bool(server.get("ready"))

        if not wait_for(ready, 120, step=0.5):
            raise AssertionError(f"{user}'s server did not start:\n" + self.output())

    def token(self, user: str, scopes: list[str]) -> str:
        answer = self.api(
            "POST", f"/users/{user}/tokens", json={"scopes": scopes, "expires_in": 3600}
        )
        assert answer.status_code == 201, answer.text
        token: str = answer.json()["token"]
        return token

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        # The proxy and the service can outlive a hub that died: stop them by group.
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.service is not None and self.service.poll() is None:
            # SIGTERM first: the service removes its pool's containers on the way out.
            self.service.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.service.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.service.pid, signal.SIGKILL)
        for user in USERS:
            subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
        self.log.close()


class RemoteKernel:
    """A kernel in a user's server, driven through the proxy as a browser drives it."""

    def __init__(self, hub: Hub, user: str) -> None:
        self.hub = hub
        self.base = f"{hub.url}/user/{user}"
        self.headers = {"Authorization": f"token {ADMIN_TOKEN}"}
        answer = requests.post(
            self.base + "/api/kernels", json={"name": "python3"}, headers=self.headers, timeout=60
        )
        assert answer.status_code == 201, answer.text
        self.id = answer.json()["id"]
        self.session = uuid.uuid4().hex
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._messages: asyncio.Queue[dict[str, Any]] | None = None
        self._socket: WebSocketClientConnection = self._call(self._connect())

    def _call(self, coroutine: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _connect(self) -> WebSocketClientConnection:
        url = self.base.replace("http://", "ws://") + f"/api/kernels/{self.id}/channels"
        self._messages = asyncio.Queue()
        return await websocket_connect(HTTPRequest(url, headers=self.headers))

    def send(self, code: str) -> str:
        msg_id = uuid.uuid4().hex
        message = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "session": self.session,
                "username": "test",
                "version": "5.3",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }

        async def write() -> None:
            await self._socket.write_message(json.dumps(message))

        self._call(write())
        return msg_id

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        async def read() -> Any:
            return await asyncio.wait_for(self._socket.read_message(), timeout)

        try:
            raw = self._call(read(), timeout + 5)
        except (asyncio.TimeoutError, TimeoutError):
            return None
        if raw is None:
            raise AssertionError("the kernel's websocket closed")
        message: dict[str, Any] = json.loads(raw)
        return message

    def execute(
        self,
        code: str,
        timeout: float = 90,
        on_message: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Run a cell; its reply's content and all the text it showed.

        A request the kernel aborted (ipykernel 7 does, just after an error reply)
        never ran, so it is sent again.
        """
        for _ in range(3):
            content, shown = self.wait_reply(self.send(code), timeout, on_message)
            if content["status"] != "aborted":
                break
            time.sleep(0.1)
        return content, shown

    def wait_reply(
        self,
        msg_id: str,
        timeout: float = 90,
        on_message: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[dict[str, Any], str]:
        shown: list[str] = []
        reply: dict[str, Any] | None = None
        idle = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (reply is not None and idle):
            message = self.next_message(max(0.1, deadline - time.monotonic()))
            if message is None:
                break
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if on_message is not None:
                on_message(message)
            kind, content = message["msg_type"], message["content"]
            if kind == "execute_reply":
                reply = content
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            else:
                shown.append(content.get("text", ""))
                shown.append(content.get("data", {}).get("text/plain", ""))
                if kind == "error":
                    shown.extend(content.get("traceback", []))
        assert reply is not None, f"no reply to the cell within {timeout}s: {''.join(shown)}"
        return reply, "".join(shown)

    def interrupt(self) -> None:
        answer = requests.post(
            f"{self.base}/api/kernels/{self.id}/interrupt", headers=self.headers, timeout=30
        )
        assert answer.status_code == 204, answer.text

    def close(self) -> None:
        try:
            self._socket.close()
            requests.delete(f"{self.base}/api/kernels/{self.id}", headers=self.headers, timeout=30)
        except requests.RequestException:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
