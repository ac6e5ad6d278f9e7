"""Which files the wheel holds; the metadata is in pyproject.toml.

The wheel installs the library (every ``chaosmining`` package) and, under ``chaosmining/_app/``, the
app exactly as the repository lays it out: ``app.py``, ``pages/``, ``ui/``, ``.streamlit/config.toml``
and the shipped demo entries ``assets/cache/**``. ``chaosmining app`` and the cache's seed entries find
them there (:mod:`chaosmining.locations`). The repository keeps ``pages/`` at its root, the folder the
design names, so the app package is mapped onto the repository root here rather than moved.
"""

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

APP = "chaosmining._app"


class BuildPy(build_py):
    """The app package is the repository root: of its modules, only app.py belongs to the app."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if m[1] == "app"] if package == APP else modules


setup(
    packages=[*find_packages(include=["chaosmining", "chaosmining.*"]), APP, f"{APP}.ui", f"{APP}.pages"],
    package_dir={APP: "."},
    package_data={
        "chaosmining": ["native/*.c", "results/*.csv"],
        APP: [".streamlit/*.toml", "assets/README.md", "assets/cache/*/*/*"],
    },
    cmdclass={"build_py": BuildPy},
)
