"""pyproject.toml, environment.yml and requirements.lock must pin the same stack."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        assert m, f"not an exact pin: {line!r} (every dependency must be pinned with ==)"
        pins[_norm(m.group(1))] = m.group(2)
    return pins


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pyproject_pins():
    project = _pyproject()["project"]
    deps = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        deps += extra
    return _pins(deps)


def environment_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_section) == 1, "environment.yml needs exactly one pip: section"
    return _pins(pip_section[0]["pip"]), env


def lock_pins():
    return _pins((ROOT / "requirements.lock").read_text().splitlines())


def test_environment_yml_agrees_with_pyproject():
    env_pins, _ = environment_pins()
    py_pins = pyproject_pins()
    only_py = sorted(set(py_pins) - set(env_pins))
    only_env = sorted(set(env_pins) - set(py_pins))
    differ = sorted(n for n in set(py_pins) & set(env_pins) if py_pins[n] != env_pins[n])
    assert not (only_py or only_env or differ), (
        f"pyproject.toml only: {only_py}; environment.yml only: {only_env}; "
        f"different versions: {[(n, py_pins[n], env_pins[n]) for n in differ]}")


def test_same_python_everywhere():
    _, env = environment_pins()
    assert "python=3.11" in env["dependencies"]
    assert _pyproject()["project"]["requires-python"].startswith(">=3.11,<3.12")


def test_lock_pins_every_direct_dependency_at_the_same_version():
    lock = lock_pins()
    for name, version in pyproject_pins().items():
        assert lock.get(name) == version, f"{name}: pyproject pins {version}, requirements.lock has {lock.get(name)}"


def test_environment_yml_and_makefile_use_the_lock():
    _, env = environment_pins()
    pip_lines = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert "-c requirements.lock" in pip_lines
    assert "-c requirements.lock" in (ROOT / "Makefile").read_text()


def test_installed_versions_match_the_lock():
    from importlib.metadata import PackageNotFoundError, version

    lock, wrong = lock_pins(), []
    for name in pyproject_pins():
        try:
            if version(name) != lock[name]:
                wrong.append((name, version(name), lock[name]))
        except PackageNotFoundError:
            wrong.append((name, None, lock[name]))
    assert not wrong, f"installed != locked (run make test to re-install): {wrong}"
