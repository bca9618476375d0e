"""The first cell of every chapter: can this kernel run the book, and what to do if it cannot.

A reader who opens a chapter from the book's launch buttons (Binder, Colab) or downloads it gets a
fresh kernel. `ensure_environment()` checks that the libraries the chapters import are there, in
the versions `environment.yml` asks for; on Colab it installs what is missing, elsewhere it stops
with the exact command to run. When all is there it says how to choose a profile and which
results stores this kernel sees. `first_cell()` is the source of the cell that calls it: that
cell must work before the library is installed, so it is plain Python with the repository URL.

    python -m grokcircuits.pages.environment_check first-cell   # the cell, with the URL of _config.yml
"""
from __future__ import annotations

import importlib
import importlib.metadata as metadata
import re
import subprocess
import sys
from dataclasses import dataclass

# import name -> pip requirement, as environment.yml pins them (a test keeps the two equal)
BOOK_REQUIREMENTS = {
    "torch": "torch==2.13.0",
    "numpy": "numpy>=1.26",
    "pandas": "pandas>=2.0",
    "altair": "altair>=5.4",
    "vl_convert": "vl-convert-python>=1.6",
}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"   # the CPU build: a few hundred MB, not GBs
NOT_INSTALLED_ON_COLAB = ("torch",)   # Colab ships its own (CUDA) torch; replacing it costs minutes


class EnvironmentNotReady(ImportError):
    """A library the chapters import is missing or too old in this kernel."""


@dataclass
class Problem:
    module: str
    requirement: str
    found: str | None   # installed version, None when it does not import

    @property
    def blocking(self) -> bool:
        """Missing, or below a minimum version; another torch than the pinned one still runs (a note)."""
        return self.found is None or _split(self.requirement)[1] != "=="

    def __str__(self) -> str:
        return f"{self.requirement} ({'not installed' if self.found is None else f'found {self.found}'})"


def on_colab() -> bool:
    return "google.colab" in sys.modules


def _split(requirement: str) -> tuple[str, str, str]:
    """'altair>=5.4' -> ('altair', '>=', '5.4'); a bare name has no bound."""
    for op in ("==", ">="):
        if op in requirement:
            name, version = requirement.split(op, 1)
            return name, op, version
    return requirement, "", ""


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version: '2.13.0+cpu' -> (2, 13, 0); pre-release tails are dropped."""
    out = []
    for part in version.split("+")[0].split("."):
        digits = re.match(r"\d*", part).group()
        if not digits:
            break
        out.append(int(digits))
        if digits != part:   # '0rc1': the release ends here
            break
    return tuple(out)


def satisfies(found: str, op: str, wanted: str) -> bool:
    if op == ">=":
        return _release(found) >= _release(wanted)
    if op == "==":
        return _release(found) == _release(wanted)
    return True


def check(requirements: dict[str, str] = BOOK_REQUIREMENTS) -> list[Problem]:
    """The requirements this kernel does not meet (importing each module once)."""
    problems = []
    for module, requirement in requirements.items():
        name, op, wanted = _split(requirement)
        try:
            importlib.import_module(module)
            found = metadata.version(name)
        except (ImportError, metadata.PackageNotFoundError):
            problems.append(Problem(module, requirement, None))
            continue
        if not satisfies(found, op, wanted):
            problems.append(Problem(module, requirement, found))
    return problems


def install_command(problems: list[Problem]) -> list[str]:
    """The cells that fix `problems`, as a reader types them (torch from the CPU wheel index)."""
    torch = [p.requirement for p in problems if p.module == "torch"]
    rest = [p.requirement for p in problems if p.module != "torch"]
    cells = [f"%pip install '{r}' --index-url {TORCH_CPU_INDEX}   # CPU build; on a GPU machine drop --index-url"
             for r in torch]
    if rest:
        cells.append("%pip install " + " ".join(f"'{r}'" for r in rest))
    return cells


def not_ready_message(problems: list[Problem]) -> str:
    lines = [f"This kernel ({sys.executable}) cannot run the book yet: "
             + "; ".join(map(str, problems)) + ".", "Run, in a cell of this notebook:"]
    lines += [f"    {c}" for c in install_command(problems)]
    lines += ["then restart the kernel and run this cell again. Or, from a clone of the repository, run "
              "`make setup` and choose the kernel of .venv (`.venv/bin/python -m ipykernel install --user "
              "--name grokcircuits`)."]
    return "\n".join(lines)


def _install_on_colab(problems: list[Problem], run) -> None:
    wanted = [p.requirement for p in problems if p.blocking and p.module not in NOT_INSTALLED_ON_COLAB]
    if wanted:
        print(f"Colab: installing {', '.join(wanted)}")
        run([sys.executable, "-m", "pip", "install", "--quiet", *wanted], check=True)
        importlib.invalidate_caches()


# The imports of the library sit inside the functions here, unlike everywhere else: this module must
# run, and say what to install, in a kernel that lacks torch or the other libraries the library needs.
def _stores() -> dict[str, int]:
    """Complete runs in each profile's results store as this kernel sees it."""
    from grokcircuits.config import PROFILES
    from grokcircuits.store import Store, results_root
    return {name: len(Store(results_root(name)).runs()) for name in PROFILES}


def profile_guide(stores: dict[str, int]) -> str:
    from grokcircuits.config import PROFILES
    from grokcircuits.store import RESULTS_ENV, results_root
    kinds = {"tiny": "trains on a CPU in minutes; too small to grok", "gpu": "one GPU, minutes per chapter",
             "paper": "the authors' settings, many GPU-hours per run"}
    choices = " | ".join(repr(name) for name in PROFILES)
    lines = [f"Choose a profile in the parameters cell (profile = {choices}); in a notebook "
             "downloaded or launched from the book, the cell tagged injected-parameters below it holds the "
             "values the page was built with: change them there. Runs already in the results store are "
             f"loaded, not retrained (set {RESULTS_ENV} to read another store):"]
    for name in PROFILES:
        lines.append(f"  {name}: {kinds.get(name, PROFILES[name].description)}; "
                     f"{stores[name]} run(s) in {results_root(name)}")
    return "\n".join(lines)


def ensure_environment(run=subprocess.run, requirements: dict[str, str] = BOOK_REQUIREMENTS) -> dict:
    """Check this kernel; install what is missing on Colab; raise `EnvironmentNotReady` with the
    exact commands elsewhere. Prints and returns what the reader needs to go on."""
    problems = check(requirements)
    if problems and on_colab():
        _install_on_colab(problems, run)
        problems = check(requirements)
    blocking = [p for p in problems if p.blocking]
    if blocking:
        raise EnvironmentNotReady(not_ready_message(blocking))
    from grokcircuits import __version__
    from grokcircuits.science.runs import default_device, device_name
    versions = {_split(r)[0]: metadata.version(_split(r)[0]) for r in requirements.values()}
    stores = _stores()
    notes = [f"note: the book pins {p}; numbers may differ in the last digits" for p in problems]
    print(f"Environment ready: grokcircuits {__version__}, python {sys.version.split()[0]}, "
          + ", ".join(f"{m} {v}" for m, v in versions.items()) + f"; device {device_name(default_device())}.")
    for n in notes:
        print(n)
    print(profile_guide(stores))
    return {"versions": versions, "stores": stores, "colab": on_colab(), "notes": notes}


FIRST_CELL = '''\
# Run first: grokcircuits and what the chapters import must be installed (on Colab this installs them).
import importlib.util, subprocess, sys
_library = "grokcircuits @ git+{url}@{ref}"
if importlib.util.find_spec("grokcircuits") is None and "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", _library], check=True)
    importlib.invalidate_caches()
if importlib.util.find_spec("grokcircuits") is None:
    raise ModuleNotFoundError(f"grokcircuits is not installed in this kernel ({{sys.executable}}): run "
                              f"%pip install '{{_library}}' in a cell, or from a clone of {url} run "
                              "`make setup` and choose the kernel of .venv")
from grokcircuits.pages.environment_check import ensure_environment
ensure_environment()'''


def first_cell(repository_url: str, ref: str = "main") -> str:
    """The source of every chapter's first code cell, for the repository at `repository_url`."""
    return FIRST_CELL.format(url=repository_url.rstrip("/"), ref=ref)


def repository_url(config_path: str = "_config.yml") -> str:
    """`repository.url` of the book's configuration: the one place the URL is set."""
    import yaml
    with open(config_path) as f:
        return yaml.safe_load(f)["repository"]["url"]


if __name__ == "__main__":
    if sys.argv[1:] == ["first-cell"]:
        print(first_cell(repository_url()))
    else:
        ensure_environment()
