"""Finished runs and what reading them needs, without the trainer: the device, the cached
datasets of a configuration, and the `Run` handle (configuration, record, curves; weights on
demand). Chapters that only read results import this module, never the engine."""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache

import torch

from grokcircuits.config import DataConfig, RunConfig, TransferConfig
from grokcircuits.science.data import build_dataset
from grokcircuits.science.models import build_model
from grokcircuits.store import Store, load_tensors
from grokcircuits.science.transfer_data import build_transfer

TRAINING_SETS = ("id_atomic", "ood_atomic", "train_inferred")   # "training accuracy" is their mean EM


def default_device() -> torch.device:
    return torch.device(os.environ.get("GROKCIRCUITS_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


@lru_cache(maxsize=8)
def dataset(config: DataConfig):
    return build_dataset(config)


@lru_cache(maxsize=8)
def transfer_dataset(data_config: DataConfig, config: TransferConfig):
    return build_transfer(dataset(data_config), config)


def examples_for(config: RunConfig) -> tuple:
    """(vocab, training examples (N, 5), probe sets {name: (n, 5)}, dataset sizes)."""
    data = dataset(config.data)
    if config.transfer is None:
        return data.vocab, data.train_examples(), data.probe_sets(), data.sizes()
    t = transfer_dataset(config.data, config.transfer)
    return t.vocab, t.train_examples(), t.probe_sets(), t.sizes()


@dataclass
class Run:
    """A finished run in the store: its configuration, record and curves; weights on demand."""
    config: RunConfig
    record: dict
    curves: list[dict]
    store: Store

    @property
    def key(self) -> str:
        return self.config.key()

    def snapshot_steps(self) -> list[int]:
        return list(self.record.get("snapshot_steps", []))

    def has_snapshot(self, step: int) -> bool:
        """Whether the weights of the snapshot at `step` are stored (a recorded step may have lost them)."""
        return (self.store.checkpoint_dir(self.key) / f"snapshot_{step}.pt").exists()

    def has_weights(self) -> bool:
        return (self.store.checkpoint_dir(self.key) / "final.pt").exists()

    def load_model(self, step: int | None = None, device: torch.device | None = None):
        """The EMA weights at the end (step=None) or at one of `snapshot_steps()`."""
        device = device or default_device()
        vocab = dataset(self.config.data).vocab
        model = build_model(self.config.model, vocab.size).to(device)
        name = "final.pt" if step is None else f"snapshot_{step}.pt"
        path = self.store.checkpoint_dir(self.key) / name
        if not path.exists():
            raise FileNotFoundError(f"no weights at {path}: the run's checkpoints were not kept on this machine "
                                    f"(only curves and records are committed); retrain it to probe its weights")
        model.load_state_dict(load_tensors(path, device))
        return model.eval()


def load_run(config: RunConfig, store: Store) -> Run | None:
    key = config.key()
    if not store.has_run(key):
        return None
    return Run(config, store.record(key), store.curves(key), store)
