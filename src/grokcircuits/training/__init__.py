"""The training engine with a model axis: many independent runs of one shape trained in one step.

    train_group(configs, store, device=None, log=None, deadline=None, stop_after=None) -> {key: Run | None}
    group_by_shape(configs, max_members=MAX_MEMBERS) -> [[RunConfig, ...], ...]
    build_step(configs, device=None, compiled=None, graph=None) -> EnsembleStep (call it: one step of all)
    model_flops_per_step(config) -> float

Parts: `members` (a run's data and batch order), `optim` (the per-member update), `step` (one step,
eager, compiled or captured as a CUDA graph), `state` (what a checkpoint holds), `evaluation`
(evaluations and snapshot rules), `record`, `ensemble` (the loop), `group` (the entry points).
The stacked forward passes are in `models/stacked.py`.
"""
from .flops import model_flops_per_step
from .group import MAX_MEMBERS, EnsembleStep, build_step, group_by_shape, shape_key, train_group

__all__ = ["train_group", "group_by_shape", "shape_key", "build_step", "EnsembleStep", "model_flops_per_step",
           "MAX_MEMBERS"]
