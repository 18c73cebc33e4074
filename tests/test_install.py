"""`pip install .` gives a working `kmnist` command, from any folder, without the checkout.

The fresh venv borrows this interpreter's installed packages (TensorFlow and the rest)
through a .pth line instead of installing them again; only the project itself is built
and installed into it, as a wheel, from a copy of what the build reads (so the checkout
gets no build/ folder, and a file the package needs but the build leaves out fails here)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from conftest import PROJECT_ROOT


@pytest.mark.slow
def test_pip_install_gives_a_kmnist_command_that_works_from_any_folder(tmp_path, mini_dir):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site_packages = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    # Lines of a .pth file are added to sys.path, but .pth files found there are not run, so
    # this checkout's own editable install (a .pth hook in that folder) does not come along.
    (venv / site_packages / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = tmp_path / "source"
    for name in ("kmnist_core", "explorer"):
        shutil.copytree(PROJECT_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "KMNIST_HOME")}
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                              "--no-build-isolation", str(source)],
                             capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env.update(KMNIST_DATA_DIR=str(mini_dir), KMNIST_HOME=str(elsewhere / "store"))
    result = subprocess.run([venv / "bin" / "kmnist", "data", "--json"], capture_output=True, text=True,
                            timeout=300, env=env, cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["source"].startswith(f"local folder {mini_dir.resolve()}")
    assert report["counts"] == {"train": [600] * 10, "test": [200] * 10}

    where = subprocess.run([python, "-c", "import kmnist_core, explorer; print(kmnist_core.__file__, explorer.__file__)"],
                           capture_output=True, text=True, env=env, cwd=elsewhere, check=True).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where  # the installed copy, not this checkout
    runs = subprocess.run([venv / "bin" / "kmnist", "runs"], capture_output=True, text=True, timeout=300, env=env,
                          cwd=elsewhere)
    assert runs.returncode == 0 and runs.stdout.startswith("no runs yet"), runs.stderr[-2000:]
