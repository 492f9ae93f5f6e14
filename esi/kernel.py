"""The project's Jupyter kernel, "Python (esi)": its installation, and the kernel provisioner
that gives it encrypted sockets wherever it is started.

A kernel started over TCP without CurveZMQ keys (what papermill's command line, nbval and
JupyterLab do by default) logs "Kernel is running over TCP without encryption" on the
terminal; ``esi run`` talks to its kernels over IPC sockets already
(:func:`esi.pipeline._ipc_kernel_manager`). :class:`EncryptedProvisioner` is jupyter_client's
local provisioner with CurveZMQ transport encryption switched on for TCP kernels (the policy
``transport_encryption="auto"``, which the kernel spec of ipykernel declares support for), so
that every client of the esi kernel encrypts its traffic, whoever starts it.
``python -m esi.kernel`` (``make setup``) installs the kernel spec into the virtual
environment and names the provisioner in it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

__all__ = ["EncryptedProvisioner", "PROVISIONER_NAME", "install"]

#: The provisioner's entry point name (pyproject.toml, ``jupyter_client.kernel_provisioners``).
PROVISIONER_NAME = "esi-encrypted-provisioner"


class EncryptedProvisioner(LocalProvisioner):
    """:class:`jupyter_client.provisioning.LocalProvisioner` that asks for CurveZMQ
    encryption of a TCP kernel's sockets, when pyzmq supports it and the caller did not
    choose a policy itself; IPC kernels are left as they are."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        import zmq

        km = self.parent
        if km is not None and getattr(km, "transport", None) == "tcp" and zmq.has("curve") \
                and getattr(km, "transport_encryption", "disabled") == "disabled":
            kwargs.setdefault("transport_encryption", "auto")
        return await super().pre_launch(**kwargs)


def install(name: str | None = None, display_name: str = "Python (esi)",
            prefix: str | None = None) -> Path:
    """Install the kernel spec ``name`` (default :data:`esi.paths.KERNEL_NAME`) into
    ``prefix`` (default: this Python's environment) with :class:`EncryptedProvisioner`;
    return its folder."""
    from ipykernel.kernelspec import install as ipykernel_install

    from esi.paths import KERNEL_NAME

    folder = Path(ipykernel_install(kernel_name=name or KERNEL_NAME, display_name=display_name,
                                    prefix=prefix or sys.prefix))
    spec = json.loads((folder / "kernel.json").read_text(encoding="utf-8"))
    spec.setdefault("metadata", {})["kernel_provisioner"] = {
        "provisioner_name": PROVISIONER_NAME, "config": {}}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    return folder


if __name__ == "__main__":
    install()
