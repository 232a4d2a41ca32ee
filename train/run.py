"""The records of a run: the ``Task`` it trains for, its plan, its datasets and loaders,
and the ``Run`` that holds them all, which the phases (plan, build, loaders, epochs,
finish) take and extend, each filling in its part."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from .loop import EpochMeter, Throughput

if TYPE_CHECKING:
    import torch
    from torch import nn

    import weights as wts

    from .augment import Augment
    from .checkpoint import TrainState
    from .config import TrainConfig
    from .context import Context
    from .lock import FolderLock
    from .loop import Step
    from .strategy import Freezing


class Split(Protocol):
    """The data of a run, split in two (``datasets.DataSplit``, ``segmentation.SegSplit``):
    the training and validation items, the classes, and per split how many items hold each
    class and the class of each file (for the unreadable ones)."""

    train: list
    val: list
    classes: list[str]
    validation: str  # where the validation items came from, as the run's header says

    def counts(self, which: str = "train") -> list[int]: ...

    def label_of(self, which: str = "train") -> dict[str, int]: ...


class Task(ABC):
    """What differs between tasks (classification, segmentation): the data a run reads,
    the datasets it makes of it, its loss and metrics, an epoch's figures and line, and
    the final report. Each task is a subclass in its own module of ``train.tasks``."""

    name: ClassVar[str]  # the --task value
    # The epoch record's figure the best epoch is chosen by, the highest ("val_top1").
    score_key: ClassVar[str]
    plots: ClassVar[tuple[str, ...]]  # the files ``plot`` writes into --out
    # Whether BatchNorms outside the backbone train under feature-extract (a U-Net's
    # decoder is such a head, whose statistics start from nothing).
    head_bn_trains: ClassVar[bool] = False

    @abstractmethod
    def load_data(self, cfg: TrainConfig) -> Split:
        """``--data`` read and split, every item checked as far as the task checks."""

    @abstractmethod
    def choose_strategy(self, run: Run) -> tuple[str, str]:
        """``auto``: the strategy and why. A probe it ran may leave its backbone in
        ``run.backbone`` for the run to reuse."""

    @abstractmethod
    def default_channels_last(self, device: torch.device) -> bool:
        """Whether the run trains channels_last unless ``--channels-last`` says."""

    def input_size(self, cfg: TrainConfig, data: Split) -> int | None:
        """The size x size images are trained at, where the task decides it (``None``: the
        weights' preprocessing does)."""
        return None

    def preprocessing(self, run: Run, model: nn.Module) -> wts.Preprocessing:
        """The preprocessing the run trains with and exports: the model's (its weights',
        else its family's default)."""
        return model.pretrained_cfg.preprocessing

    @abstractmethod
    def datasets(self, run: Run) -> Sets:
        """The training and validation datasets of the built network, and how they batch."""

    @abstractmethod
    def criterion(self, cfg: TrainConfig, label_smoothing: float = 0.0) -> nn.Module:
        """The loss (validation passes no ``label_smoothing``)."""

    @abstractmethod
    def meter(self, cfg: TrainConfig, n_classes: int) -> EpochMeter:
        """A fresh accumulator of a pass's figures."""

    @abstractmethod
    def epoch_metrics(self, train: dict, val: dict) -> dict:
        """The epoch's figures from its training and validation passes, for the log."""

    @abstractmethod
    def epoch_line(self, record: dict) -> str:
        """An epoch's figures as its log line shows them."""

    @abstractmethod
    def final_metrics(self, final: dict, classes: list[str]) -> dict:
        """The summary's figures of the final evaluation, for metrics.json."""

    @abstractmethod
    def summary(self, final: dict, classes: list[str]) -> str:
        """The final evaluation as the console shows it, after ``best epoch N:``."""

    @abstractmethod
    def plot(self, run: Run, final: dict) -> None:
        """Draw ``plots`` into --out from the history and the final evaluation."""


@dataclass
class RunPlan:
    """What the run does, decided once before anything depends on it."""

    strategy: str
    reason: str
    weights: str | None  # where the network starts: a weights spec, or None (random)
    epochs: int
    lr: float
    warmup_epochs: float
    out: Path
    channels_last: bool
    resumed: dict | None = None  # the checkpoint read for --resume
    input_size: int | None = None  # where the task decides it: images are size x size

    @property
    def probe(self) -> bool:
        return self.strategy == "linear-probe"

    @property
    def first_epoch(self) -> int:
        """The epoch this process starts at: 0, or the resumed run's epochs done."""
        return self.resumed["epoch"] if self.resumed else 0


@dataclass
class Sets:
    """The two datasets of a run and how they are batched (``make_loaders`` adds what every
    kind shares: pinned memory on CUDA, the distributed split)."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    loader_kw: dict
    net: nn.Module  # what the batches feed: the model, or a linear probe's classifier
    augment: Augment | None = None
    in_memory: bool = False
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None
    cache_path: Path | None = None
    probe_skipped: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Loaders:
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader
    sampler: torch.utils.data.distributed.DistributedSampler | None
    generator: torch.Generator
    net: nn.Module  # what the batches feed: the model, or a linear probe's classifier
    cache_path: Path | None = None
    # unreadable images per split and class, as far as known before training (the probe)
    probe_skipped: dict[str, list[int]] | None = None
    augment: Augment | None = None  # None for a linear probe (features, no images)
    in_memory: bool = False  # the decoded images are held in memory
    # Batches arrive as uint8 and are normalised by this on the device (``batches``).
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass(eq=False, repr=False)
class Run:
    """One run: what it was asked (``config``), where it runs (``context``) and for which
    ``task``, then what each phase adds, in order: the data (``read_data``), the plan
    (``plan_run``), the network (``build_network``), the loaders (``make_loaders``), the
    step (``make_step``) and the state of its epochs (``start_epochs``). A field a later
    phase fills is not there before it.

    ``where``, ``checkpoint`` and ``epoch_saved`` say where the run is, for the one-line
    error of a failure that escapes the loop (``out_of_memory``)."""

    config: TrainConfig
    context: Context
    task: Task
    started: float = field(default_factory=time.time)
    where: str = "before training"
    checkpoint: Path | None = None
    epoch_saved: int = 0
    feature_rate: float | None = None  # a linear probe's backbone pass, img/s (its cache's)
    lock: FolderLock | None = None  # the main process's hold on --out (``plan.own_out``)
    # read_data
    data: Split = field(init=False)
    workers: int = field(init=False)  # loader processes
    dtype: torch.dtype | None = field(init=False)  # autocast's, None without mixed precision
    # plan_run
    plan: RunPlan = field(init=False)
    backbone: nn.Module | None = None  # auto's probed backbone, kept for a linear probe
    # build_network
    model: nn.Module = field(init=False)
    pre: wts.Preprocessing = field(init=False)
    freezing: Freezing = field(init=False)
    # make_loaders, make_step
    loaders: Loaders = field(init=False)
    step: Step = field(init=False)
    # start_epochs and the epochs
    state: TrainState = field(init=False)
    timing: Throughput = field(default_factory=Throughput)  # this process's training passes
    stopped_early: bool = False

    @property
    def n_classes(self) -> int:
        return len(self.data.classes)

    def out_of_memory(self) -> str:
        """The one line of a run that ran out of GPU memory: where, what to try, and what
        was kept."""
        cfg = self.config
        smaller = max(1, cfg.batch_size // 2)
        suggestion = f"try a smaller one (--batch-size {smaller})"
        if smaller < cfg.batch_size:
            suggestion += (
                f", or keep the effective batch with --batch-size {smaller} "
                f"--accum-steps {cfg.accum_steps * 2}"
            )
        if self.checkpoint is not None and self.epoch_saved:
            kept = f"the last checkpoint is kept: {self.checkpoint} (epoch {self.epoch_saved})"
            kept += ", --resume continues from it"
        else:
            kept = "no checkpoint was written yet"
        return (
            f"out of GPU memory {self.where} with --batch-size {cfg.batch_size}: "
            f"{suggestion}; {kept}"
        )
