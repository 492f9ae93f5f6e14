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
