"""A stability screen's points: where the recursive model is fitted on both hops full, then continued on
the natural data (`stability.py` trains and reads them; `grids.py` names the screens)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from grokcircuits.config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig, check_positive
from grokcircuits.science.runs import dataset


@dataclass(frozen=True)
class StabilityPoint:
    """One point of the screen. `train` trains both phases (its `steps` caps the fitting phase);
    `epochs` natural-data epochs of continuation, evaluated every `eval_epochs`; `control` adds the
    continuation on the both-hops-full data."""
    name: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    epochs: int = 40
    eval_epochs: int = 2
    control: bool = False

    def validate(self) -> "StabilityPoint":
        check_positive("epochs", self.epochs)
        check_positive("eval_epochs", self.eval_epochs)
        if self.eval_epochs > self.epochs:
            raise ConfigError(f"eval_epochs={self.eval_epochs} must be <= epochs={self.epochs}")
        self.fit().validate()
        return self

    def fit(self) -> RunConfig:
        """The fitting phase: both hops full from scratch, ended once fitted and composing."""
        return RunConfig(data=replace(self.data, regime="both_full"), model=self.model,
                         train=replace(self.train, stop_when_composed=True))

    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch of the natural data (as the engine's batch order counts them)."""
        n = len(dataset(replace(self.data, regime="natural")).train_examples())
        return max(1, n // self.train.batch_size)

    def continuation(self, regime: str = "natural") -> RunConfig:
        """The fitted model's final weights trained on `regime`'s data for `epochs` natural-data epochs."""
        per_epoch = self.steps_per_epoch()
        train = replace(self.train, steps=self.epochs * per_epoch, eval_every=self.eval_epochs * per_epoch,
                        snapshots=0, stop_when_composed=False)
        return RunConfig(data=replace(self.data, regime=regime), model=self.model, train=train,
                         init_from=self.fit().key(), init_regime="both_full").validate()

    def report_epochs(self) -> tuple[int, ...]:
        """The epochs after the start at which the table reads the curves: a quarter, half and all of them."""
        return tuple(sorted({max(1, self.epochs // 4), max(1, self.epochs // 2), self.epochs}))

    def continuations(self) -> list[RunConfig]:
        return [self.continuation("natural")] + ([self.continuation("both_full")] if self.control else [])


@dataclass(frozen=True)
class Screen:
    name: str
    description: str
    points: tuple[StabilityPoint, ...]
    left_out: str = ""

    def validate(self) -> "Screen":
        names = [p.name for p in self.points]
        if len(set(names)) != len(names):
            raise ConfigError(f"screen {self.name}: point names must be distinct: {names}")
        for p in self.points:
            p.validate()
        if len({p.epochs for p in self.points}) > 1:
            raise ConfigError(f"screen {self.name}: every point continues for the same epochs (one horizon a screen)")
        return self

    def only(self, names: tuple[str, ...]) -> "Screen":
        """The screen restricted to the named points (in the screen's order)."""
        unknown = sorted(set(names) - {p.name for p in self.points})
        if unknown:
            raise ConfigError(f"points={','.join(unknown)} are not points of screen {self.name!r}; its points: "
                              f"{', '.join(p.name for p in self.points)}")
        return replace(self, points=tuple(p for p in self.points if p.name in names))

    def configs(self) -> list[RunConfig]:
        return [c for p in self.points for c in (p.fit(), *p.continuations())]
