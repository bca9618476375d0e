"""The documents a reader follows: every relative link in the README, CONTRIBUTING.md, the root page,
the book's appendix and results/sweep/README.md points at a file of the repository, every appendix
page is in the table of contents, and no file cites a protocol document the repository does not hold
(the protocol is the appendix page book/appendix/protocol.md). External links are not fetched."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "index.md", ROOT / "results" / "sweep" / "README.md",
             *sorted((ROOT / "book" / "appendix").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]+`")
MARKDOWN_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
ROLE = re.compile(r"(?<!`)\{(doc|ref)\}`([^`\n]+)`")
INCLUDE = re.compile(r"^```\{include\}\s+(\S+)", re.M)
LABEL = re.compile(r"^\(([A-Za-z0-9_.:-]+)\)=\s*$", re.M)
EXTERNAL = ("http://", "https://", "mailto:", "ftp://")
GENERATED = {ROOT / "_summary.md"}   # written by `make html` (book.write_summary) before every build

# A citation of the protocol as a file of its own (the founders' copy lived outside the repository).
CITES_MISSING_PROTOCOL = re.compile("PROTOCOL" + r"(\.md\b|\s+section)")
TEXT_SUFFIXES = {"", ".py", ".md", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".ini", ".sh", ".ipynb", ".json",
                 ".csv", ".in"}


def _prose(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The text outside fenced code blocks, roles and inline code spans; and the roles ({doc}, {ref})."""
    text = FENCE.sub(lambda m: "" if not m.group(0).startswith("```{") else m.group(0), text)
    roles = ROLE.findall(text)
    return INLINE_CODE.sub("", ROLE.sub("", text)), roles


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = list(toc.get("chapters", []))
    for part in toc.get("parts", []):
        entries += part.get("chapters", [])
    return [e["file"] for e in entries]


def _doc_exists(target: str, document: Path) -> bool:
    """A Sphinx document name: a Markdown page or notebook, or a page of the table of contents."""
    name = target.split("<")[-1].rstrip(">").strip() if "<" in target else target.strip()
    path = (ROOT / name.lstrip("/")) if name.startswith("/") else (document.parent / name)
    relative = path.resolve().relative_to(ROOT).as_posix() if path.resolve().is_relative_to(ROOT) else None
    return (any(path.with_suffix(s).is_file() for s in (".md", ".ipynb"))
            or relative in _toc_files())


def _labels() -> set[str]:
    return {label for doc in DOCUMENTS for label in LABEL.findall(doc.read_text())}


def broken_links(document: Path) -> list[str]:
    text = document.read_text()
    prose, roles = _prose(text)
    broken = []
    for target in MARKDOWN_LINK.findall(prose):
        if target.startswith(EXTERNAL) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if not (document.parent / path).exists():
            broken.append(f"link {target}")
    for target in INCLUDE.findall(text):
        included = (document.parent / target).resolve()
        if not included.is_file() and included not in GENERATED:
            broken.append(f"include {target}")
    labels = _labels()
    for role, target in roles:
        if role == "doc" and not _doc_exists(target, document):
            broken.append(f"{{doc}} {target}")
        if role == "ref":
            label = target.split("<")[-1].rstrip(">").strip() if "<" in target else target.strip()
            if label not in labels:
                broken.append(f"{{ref}} {label}")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_at_a_file_of_the_repository(document):
    assert document.is_file()
    assert broken_links(document) == [], f"{document.relative_to(ROOT)} has broken links"


def test_the_link_check_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# there\n")
    page.write_text("[ok](there.md) [ok](there.md#part) [web](https://example.org) `[code](nowhere.md)`\n"
                    "[missing](nowhere.md) {doc}`gone`\n")
    assert broken_links(page) == ["link nowhere.md", "{doc} gone"]


def test_every_appendix_page_is_in_the_table_of_contents():
    listed = set(_toc_files())
    pages = {p.relative_to(ROOT).with_suffix("").as_posix() for p in (ROOT / "book" / "appendix").glob("*.md")}
    assert pages and pages <= listed, f"appendix pages missing from _toc.yml: {sorted(pages - listed)}"
    for entry in listed - {e for e in listed if e.startswith("chapters/")}:
        assert (ROOT / f"{entry}.md").is_file(), f"_toc.yml lists {entry}, which is not a Markdown page"


def _repository_files() -> list[Path]:
    """Tracked files and untracked ones git does not ignore; without git, every file outside the
    virtual environment, build folders and results runs."""
    try:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                                capture_output=True, text=True, check=True).stdout.splitlines()
        return [ROOT / line for line in listed]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "_build", "build", "chapters", "runs", "checkpoints", "__pycache__"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def files_citing_a_missing_protocol() -> list[str]:
    citing = []
    for path in _repository_files():
        if path.suffix not in TEXT_SUFFIXES or not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if CITES_MISSING_PROTOCOL.search(line):
                citing.append(f"{path.relative_to(ROOT).as_posix()}:{number}")
    return citing


def test_the_protocol_check_sees_a_citation(tmp_path):
    assert CITES_MISSING_PROTOCOL.search("the data (" + "PROTOCOL" + " section 2)")
    assert CITES_MISSING_PROTOCOL.search("see " + "PROTOCOL" + ".md")
    assert not CITES_MISSING_PROTOCOL.search("the data (book/appendix/protocol.md, section 2)")


def test_no_file_cites_a_protocol_document_the_repository_does_not_hold():
    citing = files_citing_a_missing_protocol()
    assert not citing, "cite the protocol as book/appendix/protocol.md, not as a file of its own: " + ", ".join(citing)
