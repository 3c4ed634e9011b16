"""Copies schemas/ and manifests/ into the built package, so a non-editable wheel carries them.

In a checkout (and an editable install) the package reads them from the project root instead;
settings.embedded_registry() and settings.schemas_dir() look in both places.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in ("schemas", "manifests"):
            target = Path(self.build_lib) / "registry" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / name, target)


setup(cmdclass={"build_py": BuildPyWithData})
