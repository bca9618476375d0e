"""The named grids of the sweep that looks for where the recursive model groks.

A grid point is a full `RunConfig` of the recursive model on the natural data; beside the points,
the grid holds the standard transformer once per graph (the contrast: it should generalise in
distribution and stay near zero on OOD compositions at the same graph). What is known that aims
the grids (Wang et al. 2024 and the paper; PROTOCOL.md):

- at phi 18, in-distribution generalisation arrives while the training set is still being fitted,
  and its speed depends on phi, not on the size of the graph, when counted in epochs; phi 18 needs
  about 20 relations per entity; larger weight decay speeds grokking;
- the paper's recursive model (width 1536, lr 4e-5, wd 1.0) found the target in half the OOD queries
  after about 280 epochs: 20k steps at 100 entities, 40k at 200 (70 and 140 steps an epoch at
  batch 512);
- on a CPU, a width-64 model at lr 1e-3, wd 0.1 reached ID 0.66 but OOD 0.02 in 20k steps (batch
  128); wd 1.0 moved at half that pace; Grokfast halved the steps to ID generalisation.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig, check_choice

GROKFAST_ON = {"grokfast_alpha": 0.98, "grokfast_lambda": 2.0}   # the setting that halved the steps to ID on a CPU
GROKFAST_OFF = {"grokfast_alpha": 0.0, "grokfast_lambda": 0.0}


@dataclass(frozen=True)
class Grid:
    name: str
    description: str
    recursive: tuple[RunConfig, ...]   # the grid points: the recursive model on the natural data
    standard: tuple[RunConfig, ...]    # the standard transformer, one per graph of the points
    left_out: str                      # what a fuller grid would hold, and why this one does not

    def configs(self) -> list[RunConfig]:
        return [*self.recursive, *self.standard]

    def standard_for(self, point: RunConfig) -> RunConfig | None:
        """The standard transformer trained on the same graph (same data configuration) as `point`."""
        return next((s for s in self.standard if s.data == point.data), None)

    def validate(self) -> "Grid":
        for c in self.configs():
            c.validate()
        for c in self.recursive:
            if c.model.architecture != "trm" or c.data.regime != "natural":
                raise ConfigError(f"grid {self.name}: every point must be the recursive model on the natural data")
            if self.standard_for(c) is None:
                raise ConfigError(f"grid {self.name}: no standard transformer at the graph of n_entities={c.data.n_entities}")
        return self


# The sweep's own settings, written out rather than read from the `gpu` profile: that profile is
# to be set from the sweep's answer, and a grid must not move when it is.
SWEEP_DATA = DataConfig(n_entities=100, n_relations=50, relations_per_entity=20, ood_fraction=0.05,
                        iid_test_fraction=0.01, phi=18.0, probe_size=1000)
RECURSIVE_TRAIN = TrainConfig(batch_size=512, betas=(0.9, 0.95), warmup_steps=500, ema_decay=0.999, eval_size=1000,
                              snapshots=0)
STANDARD_MODEL = ModelConfig(architecture="gpt", width=256, layers=4, heads=8, dropout=0.1)
STANDARD_TRAIN = TrainConfig(batch_size=512, lr=3e-4, betas=(0.9, 0.999), weight_decay=0.1, grad_clip=1.0,
                             warmup_steps=500, ema_decay=0.0, loss="softmax", answer_only_loss=True, eval_size=1000,
                             snapshots=0)


def graph(n_entities: int, seed: int = 0) -> DataConfig:
    """The sweep's graphs: 20 relations an entity (phi 18 needs about 20) of 50 relation types, 5% OOD
    atomic facts, 1% of the ID compositions held out."""
    return replace(SWEEP_DATA, n_entities=n_entities, seed=seed)


def recursive_point(data: DataConfig, model: ModelConfig, lr: float, weight_decay: float, grokfast: bool,
                    **train) -> RunConfig:
    """One grid point: the recursive model trained with these knobs; `train` sets further training
    parameters (steps, eval_every, ...)."""
    train.setdefault("checkpoint_every", train.get("steps", RECURSIVE_TRAIN.steps))
    return RunConfig(data=data, model=model, train=replace(RECURSIVE_TRAIN, lr=lr, weight_decay=weight_decay, **train,
                                                           **(GROKFAST_ON if grokfast else GROKFAST_OFF)))


def standard_point(data: DataConfig, model: ModelConfig = STANDARD_MODEL, **train) -> RunConfig:
    """The standard transformer at the graph of `data`; `train` as above."""
    train.setdefault("checkpoint_every", train.get("steps", STANDARD_TRAIN.steps))
    return RunConfig(data=data, model=model, train=replace(STANDARD_TRAIN, **train))


# The first grid's points: (lr, weight decay). Under AdamW a weight shrinks by lr x wd a step, so
# 20k steps give a total decay of 20 at (1e-3, 1.0), 6 at (3e-4, 1.0), 2 at (1e-3, 0.1) and 0.6 at
# (3e-4, 0.1); the paper's run (4e-5 x 1.0 over about 400k steps to half the OOD targets) had 16.
# (3e-4, 0.1) is the least likely to grok within 20k steps and is left for a later grid.
FIRST_LR_WD = ((1e-3, 0.1), (1e-3, 1.0), (3e-4, 1.0))


def first_grid() -> Grid:
    """Aimed at one command of at most 7 minutes on one H100 (README: the estimate and what was left out)."""
    length = {"steps": 20_000, "eval_every": 500}
    width128 = ModelConfig(width=128, prefix_slots=4, expansion=4.0, token_multiple=64, h_cycles=2, l_cycles=6)
    data = graph(100)
    return Grid(
        name="first",
        description="100 entities (20 relations each, phi 18; 70 steps an epoch); width 128, H2 x L6, 4 prefix "
                    "slots; (lr, weight decay) in (1e-3, 0.1), (1e-3, 1.0), (3e-4, 1.0); Grokfast off / on; "
                    "20k steps (285 epochs), evaluation every 500",
        recursive=tuple(recursive_point(data, width128, lr, wd, gf, **length)
                        for lr, wd in FIRST_LR_WD for gf in (False, True)),
        standard=(standard_point(data, **length),),
        left_out="200 entities (twice the examples an epoch: 142 epochs in 20k steps, or twice the cost), "
                 "width 256 (twice the memory traffic of a step), lr 1e-4 and (3e-4, wd 0.1) (the least total "
                 "weight decay), 40k steps (twice the cost)",
    ).validate()


def toy_grid() -> Grid:
    """Runs end to end on a CPU in seconds: checks the sweep's code path; far too small to grok."""
    data = DataConfig(n_entities=40, n_relations=8, relations_per_entity=4, ood_fraction=0.2,
                      iid_test_fraction=0.05, phi=2.0, probe_size=100)
    trm = ModelConfig(width=32, prefix_slots=1, expansion=2.0, token_multiple=16, h_cycles=1, l_cycles=1)
    gpt = ModelConfig(architecture="gpt", width=32, layers=1, heads=2, dropout=0.0)
    small = {"steps": 40, "eval_every": 20, "batch_size": 64, "warmup_steps": 5, "eval_size": 100, "compile": False}
    return Grid(
        name="toy", description="40 entities, width 32, 40 steps: the sweep's code path on a CPU",
        recursive=tuple(recursive_point(data, trm, lr, 0.1, gf, ema_decay=0.9, **small)
                        for lr in (1e-3, 3e-3) for gf in (False, True)),
        standard=(standard_point(data, gpt, **small),), left_out="everything that matters: it checks code",
    ).validate()


GRIDS = {"first": first_grid, "toy": toy_grid}


def get_grid(name: str) -> Grid:
    check_choice("grid", name, list(GRIDS))
    return GRIDS[name]()
