"""Publishing the book online from committed results (`make publish`), never retraining.

Two checks and one preparation, run by the Makefile around the build and ghp-import:

    python -m grokcircuits.ops.publish check-results --profile tiny   # before the build
    python -m grokcircuits.ops.publish prepare _build/html --branch gh-pages   # before the push

`check-results` refuses a store that is missing, untracked or changed since its last commit: the
published pages must be reproducible from the repository. `prepare` checks that the built site
holds every page and the executed notebook each launch button opens, adds the Binder environment
(pinned to the commit the pages were built from) and `.nojekyll`, and refuses a site that carries
results, checkpoints or a virtual environment.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from grokcircuits.config import PROFILES, ConfigError, check_choice
from grokcircuits.store import results_root

FORBIDDEN_DIRS = {"results", "checkpoints", "memo", ".venv", "venv", "site-packages"}
FORBIDDEN_FILES = {"record.json", "curves.json"}
FORBIDDEN_SUFFIXES = {".pt", ".pth", ".ckpt"}
LIBRARY_LINE = "."   # binder/requirements.txt: the library from this checkout


class PublishError(RuntimeError):
    """The book cannot be published as it is; the message says what to do."""


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if done.returncode:
        raise PublishError(f"git {' '.join(args)} failed in {root}: {done.stderr.strip()}")
    return done.stdout


def _yaml(path: Path) -> dict:
    import yaml
    return yaml.safe_load(path.read_text())


def chapter_pages(root: Path) -> list[str]:
    """The chapter pages of _toc.yml, e.g. 'chapters/00_task', whether it lists them at its top level
    or in parts."""
    toc = _yaml(root / "_toc.yml")
    entries = toc.get("chapters", []) + [c for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [e["file"] for e in entries if e["file"].startswith("chapters/")]


def repository(root: Path) -> dict:
    """`repository` of _config.yml: url, branch (the launch buttons' branch) and path_to_book."""
    repo = _yaml(root / "_config.yml").get("repository") or {}
    missing = [k for k in ("url", "branch", "path_to_book") if k not in repo]
    if missing:
        raise PublishError(f"_config.yml: repository lacks {missing}; the launch buttons need url, branch, path_to_book")
    return repo


def check_committed_results(profile: str, root: Path) -> Path:
    """The profile's store, if its runs and probe results are committed and unchanged."""
    check_choice("profile", profile, list(PROFILES))
    store = results_root(profile)
    store = store if store.is_absolute() else root / store
    make = f"make results PROFILE={profile} (CPU) or make runs PROFILE={profile} (GPU)"
    if not (store / "runs").is_dir():
        raise PublishError(f"no results for profile {profile} at {store}: make them with `{make}`, "
                           f"commit {store}, then publish")
    inputs = [str(store / part) for part in ("runs", "memo") if (store / part).exists()]
    if not _git(root, "ls-files", "--", *inputs).strip():
        raise PublishError(f"{store}/runs is not tracked by git (ignored, or outside the repository): "
                           f"publishing builds from committed results; commit {store} first")
    changed = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *inputs).splitlines()
    if changed:
        shown = "\n".join(f"  {line}" for line in changed[:10]) + ("\n  ..." if len(changed) > 10 else "")
        raise PublishError(f"{len(changed)} file(s) of the results store differ from the last commit:\n{shown}\n"
                           f"commit them (git add {store}) so the published book is reproducible from the repository")
    return store


def binder_requirements(template: str, repository_url: str, commit: str) -> str:
    """binder/requirements.txt with the library installed from the repository at `commit`."""
    lines = template.splitlines()
    if LIBRARY_LINE not in (line.strip() for line in lines):
        raise PublishError(f"binder/requirements.txt has no line {LIBRARY_LINE!r} (the library) to pin")
    pinned = f"grokcircuits @ git+{repository_url.rstrip('/')}@{commit}"
    return "\n".join(pinned if line.strip() == LIBRARY_LINE else line for line in lines) + "\n"


def forbidden_paths(site: Path) -> list[str]:
    """Paths in the built site that must never be published."""
    bad = []
    for path in site.rglob("*"):
        rel = path.relative_to(site)
        if (set(rel.parts[:-1]) | ({rel.name} if path.is_dir() else set())) & FORBIDDEN_DIRS \
                or path.name in FORBIDDEN_FILES or path.suffix in FORBIDDEN_SUFFIXES:
            bad.append(str(rel))
    return sorted(bad)


def missing_pages(site: Path, root: Path, notebooks_under: str) -> list[str]:
    """index.html, every chapter page, and the executed notebook each launch button opens."""
    wanted = ["index.html"] + [f"{page}.html" for page in chapter_pages(root)]
    wanted += [str(Path(notebooks_under) / f"{page}.ipynb") for page in chapter_pages(root)]
    return [w for w in wanted if not (site / w).is_file()]


def prepare_site(site: Path, root: Path, branch: str) -> None:
    repo = repository(root)
    if repo["branch"] != branch:
        raise PublishError(f"_config.yml sets repository.branch={repo['branch']!r} but the pages go to branch "
                           f"{branch!r}: the launch buttons would open notebooks on another branch; "
                           f"publish with PUBLISH_BRANCH={repo['branch']} or change _config.yml and rebuild")
    if not site.is_dir():
        raise PublishError(f"no built book at {site}: run `make publish` without SKIP_BUILD=1")
    missing = missing_pages(site, root, repo["path_to_book"])
    if missing:
        raise PublishError(f"the built book at {site} lacks {missing}: rebuild it (`make book TRAIN=0`)")
    bad = forbidden_paths(site)
    if bad:
        raise PublishError(f"the built book at {site} holds files that are never published: {bad[:10]}")
    commit = _git(root, "rev-parse", "HEAD").strip()
    if _git(root, "status", "--porcelain", "--untracked-files=no").strip():
        print(f"warning: the working tree has uncommitted changes; Binder installs the library at {commit}",
              file=sys.stderr)
    (site / "binder").mkdir(exist_ok=True)
    template = (root / "binder" / "requirements.txt").read_text()
    (site / "binder" / "requirements.txt").write_text(binder_requirements(template, repo["url"], commit))
    (site / "binder" / "runtime.txt").write_text((root / "binder" / "runtime.txt").read_text())
    (site / ".nojekyll").touch()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grokcircuits.ops.publish")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check-results", help="refuse a results store that is not committed")
    c.add_argument("--profile", required=True)
    p = sub.add_parser("prepare", help="check the built site and add the Binder environment and .nojekyll")
    p.add_argument("site")
    p.add_argument("--branch", required=True)
    args = ap.parse_args(argv)
    root = Path.cwd()
    try:
        if args.command == "check-results":
            print(f"publishing from the committed results at {check_committed_results(args.profile, root)}")
        else:
            prepare_site(Path(args.site), root, args.branch)
            print(f"{args.site} is ready to publish to branch {args.branch}")
    except (PublishError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
