# The JupyterHub fragment for codedock-magic ships inside the package: `codedock hub-config`
# prints its path. This file stays so that a jupyterhub_config.py which loads it from a
# checkout keeps working; it loads the packaged fragment.
from codedock_magic.core.shipped import hub_fragment

load_subconfig(str(hub_fragment()))  # noqa: F821 (given by JupyterHub's config loader)
