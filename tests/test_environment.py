from __future__ import annotations

from esi.environment import parse_environment, parse_lock, render_environment
from esi.paths import PROJECT_ROOT


def test_environment_yml_mirrors_the_pip_lock():
    lock = parse_lock((PROJECT_ROOT / "requirements.lock").read_text())
    env = parse_environment((PROJECT_ROOT / "environment.yml").read_text())
    assert env == lock, "run `make environment` after changing requirements.lock"


def test_drift_is_detected():
    lock_text = "numpy==2.4.6\npandas==3.1.1\nsix==1.17.0\n"
    env_text = render_environment(lock_text)
    assert parse_environment(env_text) == parse_lock(lock_text)
    drifted = env_text.replace("numpy=2.4.6", "numpy=2.4.5")
    assert parse_environment(drifted) != parse_lock(lock_text)


def test_lock_pins_every_package_exactly():
    for line in (PROJECT_ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, line


def _installed_compiled_packages() -> set[str]:
    """Normalised names of the installed distributions built as platform wheels."""
    from importlib import metadata

    from esi.environment import normalize_name

    out = set()
    for dist in metadata.distributions():
        wheel = dist.read_text("WHEEL") or ""
        tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines()
                if line.startswith("Tag:")]
        if tags and not any(t.endswith("none-any") for t in tags):
            out.add(normalize_name(dist.metadata["Name"]))
    return out


def test_conda_provides_every_compiled_package_of_the_lock():
    # A compiled package in environment.yml's pip: section would overwrite conda's build.
    from esi.environment import CONDA_PACKAGES, normalize_name

    lock = parse_lock((PROJECT_ROOT / "requirements.lock").read_text())
    compiled = _installed_compiled_packages() & set(lock)
    assert compiled, "no compiled package found: the check itself is broken"
    from_conda = {normalize_name(v) for v in CONDA_PACKAGES.values()}
    assert compiled - from_conda == set(), "add these to esi.environment.CONDA_PACKAGES"
    text = (PROJECT_ROOT / "environment.yml").read_text()
    pip_section = text.split("  - pip:", 1)[1]
    for name in compiled:
        assert f"- {name}==" not in pip_section.lower().replace("_", "-"), name
