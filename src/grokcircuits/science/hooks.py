"""Named-state probing of the recursive model, in the style of TransformerLens.

The recursive model names its states (`Init`, `H{h}_L{l}`, `H{h}_commit`, listed in execution order in
`model.stages`) and shows each of them to a `visit(name, state)` callback of one forward call.
These two functions are the only way the probes touch the recursion:

* `run_with_cache(model, inputs, names)` returns the logits and a cache of the named states;
* `run_with_hooks(model, inputs, hooks)` runs with `hooks[name](state, name)` applied to the named
  states; a hook returns a replacement state or None (keep the state as it is).

Nothing is registered on the model: the hooks live in the callback of one call, so no hook ever
outlives it (TransformerLens needs context managers for that; here it cannot happen). A hook name
that is not a state of the model raises at once, because a misspelled name would otherwise never fire.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

Hook = Callable[[torch.Tensor, str], "torch.Tensor | None"]


def _check_names(model, names: Iterable[str]) -> None:
    unknown = [n for n in names if n not in model.stages]
    if unknown:
        raise ValueError(f"hook names {unknown} are not states of the model; allowed values: {', '.join(model.stages)}")


def _visitor(hooks: dict[str, Hook]):
    def visit(name: str, state: torch.Tensor) -> torch.Tensor:   # state (B, S, D)
        hook = hooks.get(name)
        if hook is None:
            return state
        out = hook(state, name)
        if out is None:
            return state
        if out.shape != state.shape:
            raise ValueError(f"the hook on {name} returned shape {tuple(out.shape)}; the state has {tuple(state.shape)}")
        return out
    return visit


def run_with_hooks(model, inputs: torch.Tensor, hooks: dict[str, Hook] | None = None) -> torch.Tensor:
    """inputs (B, 5) token ids -> logits (B, 5, V), with `hooks` applied to the named states."""
    hooks = dict(hooks or {})
    _check_names(model, hooks)
    logits, _ = model(inputs, None, visit=_visitor(hooks))
    return logits


def run_with_cache(model, inputs: torch.Tensor, names: Iterable[str] | Callable[[str], bool] | None = None,
                   hooks: dict[str, Hook] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """inputs (B, 5) -> (logits (B, 5, V), {name: state (B, S, D)}) for the states in `names`
    (None: every state; a callable: the names it accepts). States are cached after `hooks` ran,
    detached from the graph."""
    if names is None:
        wanted = list(model.stages)
    elif callable(names):
        wanted = [n for n in model.stages if names(n)]
    else:
        wanted = list(names)
        _check_names(model, wanted)
    hooks = dict(hooks or {})
    _check_names(model, hooks)
    cache: dict[str, torch.Tensor] = {}

    def caching(name: str, inner: Hook | None) -> Hook:
        def hook(state, hook_name):
            out = inner(state, hook_name) if inner is not None else None
            cache[hook_name] = (state if out is None else out).detach()
            return out
        return hook

    all_hooks = {**hooks, **{n: caching(n, hooks.get(n)) for n in wanted}}
    logits = run_with_hooks(model, inputs, all_hooks)
    return logits, {n: cache[n] for n in model.stages if n in cache}
