"""Flat, typed, validated configuration: data, models, training, and the three profiles.

A profile is a complete set of defaults. `tiny` runs on a laptop CPU in seconds (CI and
tests); `gpu` is the setting meant to show every claim in minutes on one H100; `paper` is
the authors' exact setting (book/appendix/protocol.md, sections 2-4 and 6). Everything that changes a result
lives in one of these dataclasses, so a run is identified by the hash of its configuration.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any


# The version of the science: bump it whenever a change to the data, models, losses, engine or probes
# can change a stored result. It enters every run key and every probe-memo key, so results made by
# older code are never served (they stay on disk, unreachable, until deleted).
SCIENCE_VERSION = 2


class ConfigError(ValueError):
    """A parameter has a value outside its allowed set; raised before any work starts."""


def hash_dict(d: dict) -> str:
    """Stable short hash of a JSON-able dict: the identity of a stored result."""
    return hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def check_choice(name: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; allowed values: {', '.join(map(repr, allowed))}")


def check_positive(name: str, value, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        raise ConfigError(f"{name}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


# --- data regimes (book/appendix/protocol.md, section 2): fact-level augmentation of OOD hops ---
@dataclass(frozen=True)
class Regime:
    name: str
    label: str          # how the paper's figures name it
    hop1_ratio: float   # rho1: fraction of the OOD hop-1 universe that gets injected queries
    hop1_samples: int   # k1: at most this many queries per injected hop-1 fact
    hop2_ratio: float   # rho2
    hop2_samples: int   # k2


REGIMES: dict[str, Regime] = {
    r.name: r
    for r in [
        Regime("natural", "natural (no augmentation)", 0.0, 0, 0.0, 0),
        Regime("both_full", "both hops, full", 1.0, 18, 1.0, 18),
        Regime("both_half", "both hops, half", 0.5, 9, 0.5, 9),
        Regime("hop1_only", "first hop only, full", 1.0, 18, 0.0, 0),
        Regime("hop2_only", "second hop only, full", 0.0, 0, 1.0, 18),
    ]
}


@dataclass(frozen=True)
class DataConfig:
    n_entities: int = 2000            # entities in the knowledge graph
    n_relations: int = 200            # relation types
    relations_per_entity: int = 20    # out-degree: distinct relations per head entity
    ood_fraction: float = 0.05        # share of atomic facts marked OOD (all still trained)
    iid_test_fraction: float = 0.005  # share of ID-ID two-hop queries held out as test_inferred_iid
    phi: float = 18.0                 # training inferred facts per ID atomic fact
    probe_size: int = 3000            # size of the sampled probe sets (id_atomic, train_inferred, test_inferred_iid)
    n_special_tokens: int = 6         # 2206 = 2000 + 200 + 6 reproduces the authors' parameter count; PAD and END are used
    regime: str = "natural"           # key of REGIMES
    seed: int = 0                     # seeds the graph, the splits and the sampling

    def validate(self) -> None:
        check_choice("regime", self.regime, list(REGIMES))
        for name in ("n_entities", "n_relations", "relations_per_entity", "probe_size"):
            check_positive(name, getattr(self, name))
        if self.relations_per_entity > self.n_relations:
            raise ConfigError(f"relations_per_entity={self.relations_per_entity} exceeds n_relations={self.n_relations}")
        if not 0 < self.ood_fraction < 1:
            raise ConfigError(f"ood_fraction={self.ood_fraction} must lie in (0, 1)")
        if not 0 <= self.iid_test_fraction < 1:
            raise ConfigError(f"iid_test_fraction={self.iid_test_fraction} must lie in [0, 1)")
        check_positive("phi", self.phi)
        if self.n_special_tokens < 2:
            raise ConfigError(f"n_special_tokens={self.n_special_tokens} must be >= 2 (PAD and END)")


@dataclass(frozen=True)
class TransferConfig:
    retained_old_examples: int = 8000  # old training examples kept (atomic facts with the queries they close)
    new_facts: int = 2000              # new atomic facts between existing entities
    chained_pairs: int = 1000          # of which chained pairs (a, r1, b), (b, r2, t)
    seed: int = 0

    def validate(self) -> None:
        for name in ("retained_old_examples", "new_facts"):
            check_positive(name, getattr(self, name))
        check_positive("chained_pairs", self.chained_pairs, allow_zero=True)
        if 2 * self.chained_pairs > self.new_facts:
            raise ConfigError(f"chained_pairs={self.chained_pairs} needs 2 x {self.chained_pairs} <= new_facts={self.new_facts}")


ARCHITECTURES = ("trm", "gpt")
FINETUNE_PROTOCOLS = ("profile", "paper_like")   # chapter 03: the profile's fine-tuning | one nearer the paper's
TOKEN_MIXERS = ("mlp", "attention")


def attention_heads(width: int) -> int:
    """Heads of the recursive model's attention variant: one per 64 channels, at least one."""
    return max(1, width // 64)


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "trm"     # trm: the parameter-sharing recursive model; gpt: the standard transformer
    width: int = 1536             # D, hidden size
    # --- trm ---
    expansion: float = 4.0        # SwiGLU expansion; hidden = round(expansion * n * 2/3) rounded up to token_multiple
    token_multiple: int = 256     # rounding of the SwiGLU hidden widths (the authors': 256)
    prefix_slots: int = 16        # prefix slots before the 5 token slots; slot 0 is the learned vector
    h_cycles: int = 2             # H-cycles; only the last one is on the gradient tape (see backprop_all_cycles)
    l_cycles: int = 6             # z_L updates per H-cycle
    blocks: int = 2               # blocks in the shared module f
    halting_head: bool = True     # the authors' vestigial halting head (never changes the output)
    # --- trm variants, off in the paper's model (screened by the stability screen) ---
    tied_embeddings: bool = False  # the output head reads with the token embedding matrix (no head of its own)
    reembed: bool = False          # between H-cycles, z_H += softmax(head(z_H)) @ embedding at the token slots
    token_mixer: str = "mlp"       # mlp (the authors'): a SwiGLU across positions; attention: self-attention
                                   # (width // 64 heads, non-causal) with learned position embeddings
    backprop_all_cycles: bool = False  # every H-cycle on the gradient tape (parameter sharing as Wang et al.
                                       # train it); the authors': only the last H-cycle
    # --- gpt ---
    layers: int = 4
    heads: int = 12
    dropout: float = 0.1

    def validate(self) -> None:
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_choice("token_mixer", self.token_mixer, TOKEN_MIXERS)
        for name in ("width", "token_multiple", "h_cycles", "l_cycles", "blocks", "layers", "heads"):
            check_positive(name, getattr(self, name))
        check_positive("prefix_slots", self.prefix_slots, allow_zero=True)
        if self.architecture == "gpt" and self.width % self.heads:
            raise ConfigError(f"width={self.width} must be divisible by heads={self.heads}")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1_556_000           # optimiser steps (1100 epochs of 724,000 examples at batch 512)
    batch_size: int = 512
    lr: float = 4e-5
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1.0
    warmup_steps: int = 2000         # linear warm-up, then constant
    grad_clip: float = 0.0           # 0 = no clipping (trm); the gpt reference clips at 1.0
    ema_decay: float = 0.999         # evaluation and checkpoints use the EMA weights; 0 = no EMA
    prefix_lr: float = 1e-4          # sign-SGD on the learned prefix vector
    prefix_weight_decay: float = 1.0
    halting_loss_weight: float = 0.5
    loss: str = "stablemax"          # stablemax (trm) or softmax (gpt)
    answer_only_loss: bool = False   # gpt: loss only on the answer continuation
    eval_every: int = 7200           # steps between evaluations (a point on every curve)
    eval_size: int = 3000            # probe queries per set per evaluation (<= the set size)
    snapshots: int = 8               # EMA snapshots kept for later probing (evenly spaced evaluations)
    checkpoint_every: int = 50_000   # steps between resumable checkpoints
    precision: str = "bf16"          # bf16 | fp16 | fp32 autocast on the GPU; the CPU always runs fp32
    compile: bool = True             # torch.compile the training step on the GPU
    grokfast_alpha: float = 0.0      # Grokfast (Lee et al. 2024): EMA decay of the gradient filter; 0 = off
    grokfast_lambda: float = 0.0     # Grokfast: weight of the filtered gradient added to the raw one
    snapshot_at_training_accuracy: float = 0.9   # keep EMA weights at the first evaluation reaching this (memorised)
    snapshot_at_ood_exact_match: float = 0.5     # ... and at the first reaching this OOD exact match (grokked)
    seed: int = 0                    # seeds initialisation and batch order
    stop_when_composed: bool = False  # end the run once it is fitted and composes (COMPOSED_RULE), at most `steps`

    def validate(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_size", "checkpoint_every"):
            check_positive(name, getattr(self, name))
        check_positive("lr", self.lr)
        check_positive("warmup_steps", self.warmup_steps, allow_zero=True)
        check_positive("snapshots", self.snapshots, allow_zero=True)
        check_choice("loss", self.loss, ("stablemax", "softmax"))
        check_choice("precision", self.precision, ("bf16", "fp16", "fp32"))
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay={self.ema_decay} must lie in [0, 1)")
        if not 0 <= self.grokfast_alpha < 1:
            raise ConfigError(f"grokfast_alpha={self.grokfast_alpha} must lie in [0, 1) (0 = Grokfast off)")
        check_positive("grokfast_lambda", self.grokfast_lambda, allow_zero=True)
        for name in ("snapshot_at_training_accuracy", "snapshot_at_ood_exact_match"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name}={getattr(self, name)} must lie in (0, 1]")


# Fields added after runs of this SCIENCE_VERSION were stored: each enters a run's key only when it is
# set away from this default, so every stored run keeps its key (and its probe memos theirs).
LATER_FIELDS: dict[str, dict[str, Any]] = {"train": {"stop_when_composed": False},
                                            "model": {"tied_embeddings": False, "reembed": False, "token_mixer": "mlp",
                                                      "backprop_all_cycles": False}}

# TrainConfig.stop_when_composed: a run is fitted and composes when, at `evaluations` evaluations in a
# row, training accuracy and the OOD atomic facts reach `fitted` and OOD exact match reaches `composes`.
COMPOSED_RULE = {"fitted": 0.99, "composes": 0.9, "evaluations": 2}


def key_dict(config_dict: dict) -> dict:
    """A run's configuration as its key hashes it: unset top-level fields and LATER_FIELDS at their
    defaults left out."""
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config_dict.items() if v is not None}
    for section, defaults in LATER_FIELDS.items():
        for name, default in defaults.items():
            if section in d and d[section].get(name, default) == default:
                d[section].pop(name, None)
    return d


@dataclass(frozen=True)
class RunConfig:
    """One training run: everything that determines its result."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    transfer: TransferConfig | None = None   # set for fine-tuning / from-scratch runs on the transfer data
    init_from: str | None = None             # key of the run whose final EMA weights start this one
    init_regime: str | None = None           # that run's data regime (how the book names the fine-tuned model)

    def validate(self) -> "RunConfig":
        self.data.validate()
        self.model.validate()
        self.train.validate()
        if self.transfer is not None:
            self.transfer.validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Stable hash of the configuration: the identity of the run in the results store.
        Top-level fields that are unset (None) and LATER_FIELDS at their defaults are left out, so a
        new field does not change the identity of the runs that do not use it; `SCIENCE_VERSION` is
        part of the key."""
        return hash_dict({"science_version": SCIENCE_VERSION, **key_dict(self.to_dict())})

    @staticmethod
    def from_dict(d: dict) -> "RunConfig":
        tr = d.get("transfer")
        train = dict(d["train"])
        train["betas"] = tuple(train["betas"])
        return RunConfig(
            data=DataConfig(**d["data"]), model=ModelConfig(**d["model"]), train=TrainConfig(**train),
            transfer=TransferConfig(**tr) if tr else None, init_from=d.get("init_from"),
            init_regime=d.get("init_regime"),
        )


# --- profiles --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    data: DataConfig
    trm: ModelConfig
    trm_train: TrainConfig
    gpt: ModelConfig
    gpt_train: TrainConfig
    transfer: TransferConfig
    finetune: TrainConfig
    validated_on: str | None   # the device whose runs showed this profile's claims can appear there; None: not yet
    seeds: tuple[int, ...] = (0, 1, 2)   # the seeds a chapter runs when none are given
    provenance: str = ""       # where the settings come from (a sweep's grid and rows, or a guess)
    finetune_paper_like: TrainConfig | None = None   # chapter 03's `finetune="paper_like"`: the paper's kind of
                               # fine-tuning (weight decay 1.0, EMA, a small lr, long); None: `finetune` is already it
    transfer_regimes: tuple[str, ...] = ("natural", "both_full")   # chapter 03's pretrained models when the page
                               # names none (`pretrain_regimes=None`): the paper fine-tunes from all five

    def finetune_config(self, protocol: str = "profile") -> TrainConfig:
        """The fine-tuning of chapter 03: the profile's own (`finetune`) or one nearer the paper's."""
        check_choice("finetune", protocol, FINETUNE_PROTOCOLS)
        return self.finetune if protocol == "profile" else (self.finetune_paper_like or self.finetune)

    def run(self, architecture: str = "trm", regime: str = "natural", seed: int = 0, **train_overrides) -> RunConfig:
        """The RunConfig for one pretraining run of this profile."""
        check_choice("architecture", architecture, ARCHITECTURES)
        check_choice("regime", regime, list(REGIMES))
        model = self.trm if architecture == "trm" else self.gpt
        train = self.trm_train if architecture == "trm" else self.gpt_train
        unknown = set(train_overrides) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise ConfigError(f"unknown training parameter(s) {sorted(unknown)}; allowed: {[f.name for f in fields(TrainConfig)]}")
        return RunConfig(
            data=replace(self.data, regime=regime, seed=seed),
            model=model,
            train=replace(train, seed=seed, **train_overrides),
        ).validate()

    def transfer_run(self, pretrained: RunConfig | None, seed: int = 0, protocol: str = "profile") -> RunConfig:
        """Fine-tuning of `pretrained` on the transfer data (`protocol`: FINETUNE_PROTOCOLS); `None`
        gives the from-scratch control. The transfer data are built from the natural data of the
        seed's graph whatever the pretraining regime, so every condition of a seed fine-tunes on the
        same examples."""
        base = pretrained or self.run("trm", "natural", seed)
        return RunConfig(
            data=replace(base.data, regime="natural"), model=base.model,
            train=replace(self.finetune_config(protocol), seed=seed),
            transfer=replace(self.transfer, seed=seed),
            init_from=pretrained.key() if pretrained is not None else None,
            init_regime=pretrained.data.regime if pretrained is not None else None,
        ).validate()


PAPER = Profile(
    name="paper",
    description="the authors' exact settings: 2000 entities, width 1536, 1.56M steps per run",
    data=DataConfig(),
    trm=ModelConfig(),
    trm_train=TrainConfig(),
    gpt=ModelConfig(architecture="gpt", width=768, layers=4, heads=12, dropout=0.1),
    gpt_train=TrainConfig(steps=1_500_000, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01, grad_clip=1.0,
                          ema_decay=0.0, loss="softmax", answer_only_loss=True, precision="fp16"),
    transfer=TransferConfig(),
    finetune=TrainConfig(steps=40_000, lr=2e-5, eval_every=976, checkpoint_every=10_000),
    validated_on=None,
    provenance="the authors' settings (book/appendix/protocol.md)",
)

GPU = Profile(
    name="gpu",
    description="a smaller graph and model meant to show every claim in minutes on one H100 (not yet validated on a GPU)",
    data=DataConfig(n_entities=500, n_relations=50, relations_per_entity=20, ood_fraction=0.05,
                    iid_test_fraction=0.01, phi=18.0, probe_size=1000),
    trm=ModelConfig(width=256, prefix_slots=4, expansion=4.0, token_multiple=64),
    trm_train=TrainConfig(steps=60_000, lr=3e-4, weight_decay=0.3, warmup_steps=500, eval_every=1000,
                          eval_size=1000, checkpoint_every=10_000, snapshots=12),
    gpt=ModelConfig(architecture="gpt", width=256, layers=4, heads=8, dropout=0.1),
    gpt_train=TrainConfig(steps=30_000, lr=3e-4, betas=(0.9, 0.999), weight_decay=0.1, grad_clip=1.0,
                          warmup_steps=500, ema_decay=0.0, loss="softmax", answer_only_loss=True,
                          eval_every=1000, eval_size=1000, checkpoint_every=10_000),
    transfer=TransferConfig(retained_old_examples=3000, new_facts=600, chained_pairs=300),
    finetune=TrainConfig(steps=10_000, lr=1e-4, weight_decay=0.3, warmup_steps=200, eval_every=500,
                         eval_size=1000, checkpoint_every=5000, snapshots=0),
    finetune_paper_like=TrainConfig(steps=20_000, lr=4e-5, weight_decay=1.0, warmup_steps=200, eval_every=500,
                                    eval_size=1000, checkpoint_every=5000, snapshots=0),
    validated_on=None,
    provenance="a guess from FLOPs and memory traffic; `make sweep GRID=first` on a GPU is to set it",
)

TINY = Profile(
    name="tiny",
    description="a toy graph and model for CPUs, CI and tests: seconds per run; too small to grok",
    data=DataConfig(n_entities=120, n_relations=12, relations_per_entity=4, ood_fraction=0.2,
                    iid_test_fraction=0.05, phi=2.0, probe_size=200),
    trm=ModelConfig(width=64, prefix_slots=1, expansion=2.0, token_multiple=16, h_cycles=2, l_cycles=2),
    trm_train=TrainConfig(steps=600, batch_size=128, lr=2e-3, weight_decay=0.05, warmup_steps=50,
                          ema_decay=0.99, eval_every=100, eval_size=200, snapshots=6, checkpoint_every=200,
                          compile=False),
    gpt=ModelConfig(architecture="gpt", width=64, layers=2, heads=4, dropout=0.0),
    gpt_train=TrainConfig(steps=600, batch_size=128, lr=2e-3, betas=(0.9, 0.999), weight_decay=0.05,
                          grad_clip=1.0, warmup_steps=50, ema_decay=0.0, loss="softmax",
                          answer_only_loss=True, eval_every=100, eval_size=200, snapshots=0,
                          checkpoint_every=200, compile=False),
    transfer=TransferConfig(retained_old_examples=600, new_facts=120, chained_pairs=60),
    finetune=TrainConfig(steps=300, batch_size=128, lr=1e-3, weight_decay=0.05, warmup_steps=30,
                         ema_decay=0.99, eval_every=50, eval_size=200, snapshots=0, checkpoint_every=100,
                         compile=False),
    finetune_paper_like=TrainConfig(steps=600, batch_size=128, lr=3e-4, weight_decay=1.0, warmup_steps=30,
                                    ema_decay=0.99, eval_every=50, eval_size=200, snapshots=0, checkpoint_every=100,
                                    compile=False),
    validated_on=None,
    seeds=(0, 1),
    provenance="chosen to run the code path in seconds; never meant to grok",
)

# The `cpu` profile: the sweep's grid `cpu_wd03` (grids.py), whose runs at seeds 0, 1 and 2 are this
# profile's recursive-model pretraining runs (a test holds them equal, so the campaign loads them instead of
# training them again); its standard transformer at seed 0 is the grid `cpu`'s. Its graph leaves 10 of 30 relations
# free at every entity for the transfer facts.
CPU_DATA = DataConfig(n_entities=50, n_relations=30, relations_per_entity=20, ood_fraction=0.1,
                      iid_test_fraction=0.05, phi=18.0, probe_size=1000)
CPU_GROKFAST = {"grokfast_alpha": 0.98, "grokfast_lambda": 2.0}

CPU = Profile(
    name="cpu",
    description="50 entities, width 128, H2 x L2, Grokfast, weight decay 0.3: the smallest setting measured to show "
                "the claims on a 2-core CPU (results/sweep/cpu_wd03)",
    data=CPU_DATA,
    trm=ModelConfig(width=128, prefix_slots=1, expansion=4.0, token_multiple=16, h_cycles=2, l_cycles=2),
    trm_train=TrainConfig(steps=40_000, batch_size=128, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.3,
                          warmup_steps=200, ema_decay=0.99, eval_every=500, eval_size=1000, snapshots=12,
                          checkpoint_every=1000, compile=True, **CPU_GROKFAST),
    gpt=ModelConfig(architecture="gpt", width=128, layers=4, heads=4, dropout=0.1),
    gpt_train=TrainConfig(steps=20_000, batch_size=128, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.1, grad_clip=1.0,
                          warmup_steps=200, ema_decay=0.0, loss="softmax", answer_only_loss=True, eval_every=500,
                          eval_size=1000, snapshots=0, checkpoint_every=1000, compile=True),
    transfer=TransferConfig(retained_old_examples=1000, new_facts=200, chained_pairs=100),
    finetune=TrainConfig(steps=5000, batch_size=128, lr=5e-4, betas=(0.9, 0.95), weight_decay=0.1, warmup_steps=100,
                         ema_decay=0.99, eval_every=250, eval_size=1000, snapshots=0, checkpoint_every=1000,
                         compile=True),
    # nearer the paper's (lr 2e-5, weight decay 1.0, EMA 0.999, about 39k steps at batch 512): its weight decay
    # and EMA, an lr 5 times below the profile's, twice the steps
    finetune_paper_like=TrainConfig(steps=10_000, batch_size=128, lr=1e-4, betas=(0.9, 0.95), weight_decay=1.0,
                                    warmup_steps=100, ema_decay=0.999, eval_every=500, eval_size=1000, snapshots=0,
                                    checkpoint_every=1000, compile=True),
    transfer_regimes=("natural", "both_full", "both_half", "hop1_only", "hop2_only"),
    validated_on="CPU: Intel Xeon, AVX-512, 2 cores (1 thread a run)",
    provenance="the point of grid `cpu` (results/sweep/cpu/table.json) at the weight decay of grid `cpu_wd03` "
               "(results/sweep/cpu_wd03/table.json), set from condition (a): both hops full reached OOD exact match "
               "0.9 at 2,500-4,000 steps (20-31 epochs, 3 seeds) and ended at 0.98-1.0; weight decay 0.3 rather than "
               "the grid `cpu`'s 0.1 because at 0.3 first hop only stayed at OOD exact match 0.00-0.02 in all three "
               "seeds with the OOD bridge decoded at 0.61-0.94 (at 0.1 its OOD exact match scattered over 0.02-0.35). "
               "Condition (b) is open: the natural run stayed at "
               "OOD exact match 0.02-0.05 through its 40,000 steps (312 epochs) at all three seeds with its OOD atomic "
               "facts stored (0.97-1.0), as it did at weight decay 0.1 (grid `cpu`), 0.3 and 1.0 over 781 epochs "
               "(grid `cpu_next`) and with the paper's recursion depth (grid `cpu_deep`), and on one H200 in the grid "
               "`first` (100 entities, H2 x L6, 284 epochs)",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (TINY, CPU, GPU, PAPER)}


def get_profile(name: str) -> Profile:
    check_choice("profile", name, list(PROFILES))
    return PROFILES[name]
