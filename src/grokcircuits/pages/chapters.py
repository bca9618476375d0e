"""The book's pages, defined once: every chapter's name, title, page parameters and the runs it
plans, and chapter 01's variant pages. The Makefile and CI read the names from here
(`python -m grokcircuits chapters`), the command line and the campaign read the plans, the pages
read the parameters; `tests/test_book.py` holds `_toc.yml` to it.

    python -m grokcircuits chapters                  # 00_task 01_identical_paths ... (the Makefile's CHAPTERS)
    python -m grokcircuits chapters --variants       # 01_identical_paths_iid 01_identical_paths_composing
    python -m grokcircuits chapters --variant PAGE   # -p grokking_set iid -p ... (its papermill parameters)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from grokcircuits.config import Profile, RunConfig
from grokcircuits.pages import experiments as ex


def _transfer(profile: Profile, seeds) -> list[RunConfig]:
    pre, fine = ex.transfer_runs(profile, seeds)
    return pre + fine


@dataclass(frozen=True)
class Chapter:
    name: str                      # book/<name>.py, executed to chapters/<name>.ipynb
    title: str                     # what the chapter asks
    parameters: tuple[str, ...]    # the page parameters it accepts (book.parameters checks them)
    plan: Callable[[Profile, list], list[RunConfig]] | None = None   # the runs it reads, at a profile and seeds

    @property
    def number(self) -> str:
        return self.name[:2]


@dataclass(frozen=True)
class VariantPage:
    """A chapter executed again with other parameters, as a page of its own, its verdict filed apart."""
    page: str                      # chapters/<page>.ipynb
    chapter: str                   # the chapter it executes
    title: str                     # as _toc.yml names it
    parameters: dict = field(default_factory=dict)
    verdict: str = ""              # the verdict file's stem

    def papermill_arguments(self) -> str:
        return " ".join(f"-p {k} {v}" for k, v in self.parameters.items())


SEEDED = ("profile", "seeds", "workers")
CHAPTERS: tuple[Chapter, ...] = (
    Chapter("00_task", "the two-hop task, and why a standard transformer fails on OOD compositions", SEEDED,
            ex.task_runs),
    Chapter("01_identical_paths", "claim 1: do grokked and non-grokked models use the same path on ID queries?",
            SEEDED + ("query_set", "patching_queries", "grokking_set", "grokking_criterion", "memorised_at", "comparison"),
            ex.path_runs),
    Chapter("02_accuracy_vs_circuit", "claim 2: can OOD accuracy and the bridge circuit form independently?",
            SEEDED + ("regimes", "grokking_criterion"), lambda profile, seeds: ex.regime_runs(profile, seeds)),
    Chapter("03_limited_transfer", "claim 3: does a mature circuit compose newly learnt facts?",
            SEEDED + ("pretrain_regimes", "grokking_criterion", "finetune"), _transfer),
    Chapter("04_cost", "what each run cost, and whether waiting for grokking is worth it", ("profile",)),
)
# Chapter 01's variants, for a scale at which the OOD compositions never come to the natural data: the
# checkpoints before and after in-distribution generalisation (filed as 01_identical_paths.iid.json),
# and, at the end of training, a model that composes OOD facts (both hops full) against one that does
# not (natural, same graph and seed; filed as 01_identical_paths.composing.json).
IID_VARIANT = VariantPage(page="01_identical_paths_iid", chapter="01_identical_paths",
                          title="Claim 1, variant: before and after in-distribution generalisation",
                          parameters={"grokking_set": "iid", "grokking_criterion": 0.9, "memorised_at": 0.8},
                          verdict="01_identical_paths.iid")
COMPOSING_VARIANT = VariantPage(page="01_identical_paths_composing", chapter="01_identical_paths",
                                title="Claim 1, variant: a model that composes against one that does not",
                                parameters={"comparison": "composing"}, verdict="01_identical_paths.composing")
VARIANTS: tuple[VariantPage, ...] = (IID_VARIANT, COMPOSING_VARIANT)


@dataclass(frozen=True)
class PageVerdict:
    """A second verdict on a chapter's own page: a question the same runs answer, in a checked cell of
    its own, filed apart (<verdict>.json) and listed after the chapter's row on the root page."""
    page: str                      # the chapter whose page carries it
    verdict: str                   # the verdict file's stem
    title: str                     # how the root page names it


PAGE_VERDICTS: tuple[PageVerdict, ...] = (
    PageVerdict("02_accuracy_vs_circuit", "02_accuracy_vs_circuit.composed_facts",
                "Claim 2, variant: composition beyond the facts composed in training"),
)


def variant(page: str) -> VariantPage:
    """The variant page named `page`; a clear error naming the allowed ones otherwise."""
    found = {v.page: v for v in VARIANTS}
    if page not in found:
        from grokcircuits.config import ConfigError
        raise ConfigError(f"variant page {page!r} is not defined; allowed values: {', '.join(found)}")
    return found[page]


def names() -> list[str]:
    return [c.name for c in CHAPTERS]


def by_number() -> dict[str, Chapter]:
    """{'00': chapter, ...}: the chapters that plan runs, by their number (the command line's names)."""
    return {c.number: c for c in CHAPTERS if c.plan is not None}


def planned_runs(profile: Profile, seeds=None) -> dict[str, list[RunConfig]]:
    """{chapter name: [RunConfig]}: the runs each chapter plans at `profile` with `seeds` (default: the
    profile's) and its default parameters."""
    seeds = list(profile.seeds if seeds is None else seeds)
    return {c.name: c.plan(profile, seeds) for c in CHAPTERS if c.plan is not None}
