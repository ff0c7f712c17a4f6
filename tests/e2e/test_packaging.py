"""The project installs quietly: building it prints no warning from the build backend.

``make demo`` and ``make test`` install the project with pip, which runs setuptools' build
hooks; a deprecated piece of metadata shows up there as a banner of warnings (and, for some,
a date after which such builds stop working). The hooks run here on a copy of the project,
as pip runs them, with the setuptools of this environment.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("pyproject.toml", "README.md", "LICENSE", "app.py",
           "hub", "lookup", "integrations", "state", "web", "cli")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """What a fresh clone holds of the project's installable part."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in SHIPPED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=IGNORED)
        elif source.exists():
            shutil.copy2(source, copy / name)
    return copy


# Runs a build hook and prints each Python warning it raised, one per marked line: these are
# what pip shows of a build, even with --quiet (the backend's log lines it keeps back).
MARK = "raised warning: "
HOOK = """
import sys, warnings
from setuptools import build_meta
hook, mark = sys.argv[1:]  # read first: the hook rewrites sys.argv
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    getattr(build_meta, hook)("dist")
for warning in caught:
    first_line = str(warning.message).splitlines()[0]
    print(f"{mark}{warning.category.__name__}: {first_line}")
"""


def build_warnings(project: Path, hook: str) -> list[str]:
    """Run setuptools' PEP 517 ``hook`` in ``project``; the warnings it raised."""
    done = subprocess.run([sys.executable, "-c", HOOK, hook, MARK], cwd=project,  # noqa: S603 -- this interpreter, a fixed script
                          capture_output=True, text=True, timeout=120, check=False)
    assert 0 == done.returncode, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith(MARK)]


@pytest.mark.parametrize("hook", ["build_editable", "build_wheel"])
def test_building_the_project_prints_no_warning(project: Path, hook: str) -> None:
    assert [] == build_warnings(project, hook)


def test_the_license_is_an_spdx_expression_with_its_text_shipped(project: Path) -> None:
    build_warnings(project, "build_wheel")
    wheel = next((project / "dist").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
        licenses = [n for n in archive.namelist() if n.endswith("/licenses/LICENSE")]
    assert "License-Expression: Apache-2.0" in lines
    assert 1 == len(licenses)
