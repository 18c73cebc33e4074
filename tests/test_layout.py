"""The layout's promise: ``kmnist_core`` is a headless engine. Importing every one of its
modules pulls in neither Streamlit nor plotly, so the CLI, the worker and scripts start
without the app's weight, and nothing in the engine can depend on the UI."""

import importlib.util
import pkgutil
import subprocess
import sys

import pytest

import kmnist_core

from conftest import PROJECT_ROOT


@pytest.mark.process  # starts real processes
def test_the_engine_imports_no_ui_library():
    modules = sorted(f"kmnist_core.{m.name}" for m in pkgutil.iter_modules(kmnist_core.__path__) if m.name != "__main__")
    if importlib.util.find_spec("ray") is None:  # the modules that train on Ray need the optional ray extra
        modules = [name for name in modules if name not in ("kmnist_core.dispatcher", "kmnist_core.ray_tasks")]
    assert "kmnist_core.training" in modules and "kmnist_core.cli" in modules
    script = (f"import sys\nsys.path.insert(0, {str(PROJECT_ROOT)!r})\n"
              + "".join(f"import {name}\n" for name in modules)
              + "print(sorted(m for m in ('streamlit', 'plotly') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_app_package_is_imported_only_by_pages():
    """Nothing in the engine names the app package (imports point one way only)."""
    offenders = [path.name for path in (PROJECT_ROOT / "kmnist_core").glob("*.py")
                 if "explorer" in path.read_text().replace("KMNIST Explorer", "")]
    assert offenders == []


def test_pyproject_pins_the_same_versions_as_requirements():
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    pinned = {line.strip() for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert declared == pinned


def test_the_package_says_the_version_pyproject_declares():
    import tomllib

    import kmnist_core

    assert kmnist_core.__version__ == tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
