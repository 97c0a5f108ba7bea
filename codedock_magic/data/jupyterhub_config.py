# codedock-magic for a multi-user JupyterHub: the sandbox service, managed by the hub.
#
# It ships in the codedock-magic package; `codedock hub-config` prints its path. Load it
# from your own jupyterhub_config.py, after your own services and roles:
#
#     load_subconfig("/the/path/codedock/hub-config/printed")
#
# or copy it there (`codedock hub-config --print`). It
#   - starts `codedock serve` as the hub's managed service "codedock", on 127.0.0.1;
#     the service reads /etc/codedock/codedock_service_config.py (its ceilings, quotas,
#     audit log), and is the only process that needs the Docker engine;
#   - registers it with no `url`, so the hub's public proxy has no route to it: only
#     kernels (on this host, at CODEDOCK_SERVICE_URL) and the hub reach it, never an
#     anonymous visitor of the hub's public address;
#   - lets every user's server token reach that service and nothing more
#     (access:services!service=codedock), and tells kernels where it is
#     (CODEDOCK_SERVICE_URL in the spawner's environment).
#
# The service needs no scope of its own: it checks a kernel's token by asking the hub
# "whose token is this?" with that very token, and the answer carries the user's name
# and groups. So its role grants nothing.
#
# Settings read from the hub's environment, since a fragment cannot read the values
# of your own config file:
#   CODEDOCK_SERVICE_PORT    the service's port on 127.0.0.1 (default 8765)
#   CODEDOCK_SERVICE_CONFIG  its config file (default /etc/codedock/codedock_service_config.py)
#
# Users' servers must not be able to reach the Docker socket: with LocalProcessSpawner,
# keep users out of the `docker` group.

import os
import sys

c = get_config()  # noqa: F821 (given by JupyterHub's config loader)

_port = int(os.environ.get("CODEDOCK_SERVICE_PORT", "8765"))
_url = f"http://127.0.0.1:{_port}"
_command = [sys.executable, "-m", "codedock_magic", "serve", "--ip=127.0.0.1", f"--port={_port}"]
if os.environ.get("CODEDOCK_SERVICE_CONFIG"):
    _command.append(f"--config={os.environ['CODEDOCK_SERVICE_CONFIG']}")

c.JupyterHub.services.append(
    {
        "name": "codedock",
        # No "url": with one, the hub would route /services/codedock/ of its public
        # proxy to the service, and anyone who can reach the hub could reach it.
        "command": _command,
        "display": False,
        # The service talks to the engine as the hub's own user (root); these say where.
        "environment": {
            name: os.environ[name]
            for name in ("DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "PATH")
            if name in os.environ
        },
    }
)

c.JupyterHub.load_roles.append(
    {
        "name": "codedock-service",
        "description": "The sandbox service: needs no access to the hub's data.",
        "scopes": [],
        "services": ["codedock"],
    }
)
# Every user may reach the service, and their server's token carries that right
# (a token gets only the scopes its owner holds).
c.JupyterHub.load_roles.append(
    {
        "name": "user",
        "description": "A user's own resources, and the sandbox service.",
        "scopes": ["self", "access:services!service=codedock"],
    }
)
c.Spawner.server_token_scopes.extend(
    ["access:servers!server", "users:activity!user", "access:services!service=codedock"]
)
c.Spawner.environment.update({"CODEDOCK_SERVICE_URL": _url})
