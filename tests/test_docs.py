"""The API reference (docs/api/*.rst) documents every module of the package."""
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_has_an_api_page_entry():
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules = set()
    for pkg, folder in dirs.items():
        modules.add(pkg)
        modules |= {f"{pkg}.{p.stem}" for p in (ROOT / folder).glob("*.py") if p.stem != "__init__"}
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.rst"):
        documented |= set(re.findall(r"^\.\. automodule:: (\S+)$", page.read_text(), re.M))
    assert modules - documented == set(), "add these modules to docs/api/*.rst"
    assert documented - modules == set(), "docs/api/*.rst names modules that do not exist"
    index = (ROOT / "docs" / "index.md").read_text()
    for page in (ROOT / "docs" / "api").glob("*.rst"):
        assert f"api/{page.stem}" in index, page.name
