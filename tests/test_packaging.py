"""The distribution installs one import package, ``frontdesk``, and nothing else.

The folders the project is known by (``ingest/``, ``channels/``, ...) sit at the
top of the tree and are mapped into ``frontdesk.*`` by ``package-dir`` in
``pyproject.toml``; these tests check that the mapping is complete and that a
wheel built from it, installed in a fresh virtualenv, puts only ``frontdesk``
at the top of site-packages and starts the console script.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder_of(package: str, package_dir: dict[str, str]) -> Path:
    """Where ``package`` lives in the source tree, by the longest mapped prefix."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return REPO / package_dir[prefix] / Path(*parts[cut:])
    raise AssertionError(f"{package} has no package-dir mapping")


def test_every_package_folder_is_listed_and_mapped():
    config = _setuptools_config()
    package_dir, packages = config["package-dir"], set(config["packages"])
    mapped_folders = {_folder_of(p, package_dir).resolve() for p in packages}
    for top in set(package_dir.values()):
        for init in (REPO / top).rglob("__init__.py"):
            assert init.parent.resolve() in mapped_folders, f"{init.parent} is a package missing from pyproject.toml"
    for package in packages:
        assert _folder_of(package, package_dir).is_dir(), package


def test_console_script_points_into_the_namespace():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"frontdesk": "frontdesk.runtime.cli:main"}


@pytest.mark.slow
def test_wheel_in_a_fresh_virtualenv_installs_only_frontdesk(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob("frontdesk-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # --no-deps: the point is the layout, and the test environment already
    # proved the dependencies install; this keeps the test offline and fast.
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    ours = {p.name for p in site.iterdir()
            if not p.name.endswith((".dist-info", ".pth")) and p.name not in {"pip", "_distutils_hack", "setuptools", "pkg_resources", "__pycache__"}
            and not p.name.startswith(("pip-", "setuptools-", "distutils-precedence"))}
    assert ours == {"frontdesk"}
    installed = site / "frontdesk"
    for sub in ("ingest", "channels", "automation", "outbound", "api", "runtime", "tickets", "model", "storage"):
        assert (installed / sub / "__init__.py").is_file(), sub
    assert (installed / "storage" / "migrations" / "versions" / "0001_initial_schema.py").is_file()
    assert (installed / "storage" / "migrations" / "script.py.mako").is_file()
    entry = (env_dir / "bin" / "frontdesk").read_text()
    assert "from frontdesk.runtime.cli import main" in entry
