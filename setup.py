"""Packs formicary's non-Python parts into the wheel: the firmware sources and the board definitions with the
PlatformIO dev-platform are copied to formicary/_resources/, where formicary.resources finds them when formicary
is installed from a wheel rather than used from a checkout. Everything else is configured in pyproject.toml."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
RESOURCES = ("firmware", "boards")


class BuildPyWithResources(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout
        dest = Path(self.build_lib) / "formicary" / "_resources"
        for name in RESOURCES:
            shutil.copytree(ROOT / name, dest / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pio"))


setup(cmdclass={"build_py": BuildPyWithResources})
