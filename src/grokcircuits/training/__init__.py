"""The training engine with a model axis: many independent runs of one shape trained in one step.

    train_group(configs, store, device=None, log=None, deadline=None, stop_after=None) -> {key: Run | None}
    group_by_shape(configs, max_members=MAX_MEMBERS) -> [[RunConfig, ...], ...]
    build_step(configs, device=None, compiled=None, graph=None) -> EnsembleStep (call it: one step of all)
    model_flops_per_step(config) -> float
    train(config, store, ...) -> Run | None: one run, an ensemble of one
    training_loss(model, loss_kind, halting_weight, compiled) -> the loss of one batch for a plain module

Parts: `members` (a run's data and batch order), `optim` (the per-member update), `step` (one step,
eager, compiled or captured as a CUDA graph), `state` (what a checkpoint holds), `evaluation`
(evaluations and snapshot rules), `record`, `ensemble` (the loop), `group` (the entry points),
`single` (one run), `no_train` (the switch that forbids training when the book renders committed runs).
The stacked forward passes are in `science/models/stacked.py`. A run is cached by the hash of its
configuration, checkpointed atomically and resumed exactly after an interruption; on the GPU the whole
step is compiled and captured as one CUDA graph.
"""
from grokcircuits.training.flops import model_flops_per_step
from grokcircuits.training.ensemble import lr_factor
from grokcircuits.training.group import MAX_MEMBERS, EnsembleStep, build_step, group_by_shape, shape_key, train_group
from grokcircuits.training.single import train, training_loss

__all__ = ["train_group", "group_by_shape", "shape_key", "build_step", "EnsembleStep", "model_flops_per_step",
           "MAX_MEMBERS", "train", "training_loss", "lr_factor"]
