"""The esi kernel encrypts its sockets whoever starts it (papermill's command line, nbval,
JupyterLab): no "Kernel is running over TCP without encryption" warning on the terminal."""

from __future__ import annotations

import json

import pytest

from esi.kernel import PROVISIONER_NAME, EncryptedProvisioner
from esi.paths import KERNEL_NAME


def test_the_installed_kernel_spec_names_the_encrypting_provisioner():
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)  # make setup installs it
    assert spec.metadata["kernel_provisioner"]["provisioner_name"] == PROVISIONER_NAME
    assert "curve" in spec.metadata["supported_encryption"]


def test_the_provisioner_is_registered():
    from jupyter_client.provisioning.factory import KernelProvisionerFactory

    assert KernelProvisionerFactory.instance()._check_availability(PROVISIONER_NAME)


def test_install_writes_the_provisioner_into_the_spec(tmp_path):
    from esi.kernel import install

    folder = install("esi-test", "Python (esi test)", prefix=str(tmp_path))
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == PROVISIONER_NAME
    assert spec["display_name"] == "Python (esi test)"
    assert folder.is_relative_to(tmp_path)


@pytest.mark.slow
def test_a_tcp_kernel_is_encrypted_and_warns_of_nothing(capfd):
    import zmq
    from jupyter_client.manager import KernelManager

    if not zmq.has("curve"):
        pytest.fail("pyzmq of requirements.lock has CurveZMQ; this one does not")
    km = KernelManager(kernel_name=KERNEL_NAME)  # jupyter_client's defaults: TCP
    km.start_kernel()
    try:
        assert isinstance(km.provisioner, EncryptedProvisioner)
        assert km.transport == "tcp" and km.curve_publickey is not None
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        reply = kc.execute_interactive("print(6 * 7)", timeout=120)
        assert reply["content"]["status"] == "ok"
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    out, err = capfd.readouterr()
    assert "42" in out
    assert "without encryption" not in err
