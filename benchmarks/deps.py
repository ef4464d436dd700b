"""The baselines come from PyPI: install them into this interpreter's environment if missing."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import subprocess
import sys

# import name -> requirement installed from PyPI when the import fails
BASELINE_PACKAGES = {
    "canvasapi": "canvasapi>=3.3",
    "googleapiclient": "google-api-python-client>=2.100",
    "google.oauth2": "google-auth>=2.30",
}
DISTRIBUTIONS = ("canvasapi", "google-api-python-client", "google-auth", "requests", "httplib2")


def _missing() -> list[str]:
    missing = []
    for module, requirement in BASELINE_PACKAGES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(requirement)
    return missing


def ensure_baselines(log=print) -> dict[str, str]:
    """pip-install whichever baseline library is missing; return the versions in use."""
    missing = _missing()
    if missing:
        log(f"installing the baselines from PyPI: {' '.join(missing)}")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)
        importlib.invalidate_caches()
        still = _missing()
        if still:
            raise SystemExit(f"could not install {' '.join(still)}")
    versions = {}
    for dist in DISTRIBUTIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions
