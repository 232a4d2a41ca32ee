"""Planning a run: the output folder, the data, the strategy (``auto``'s choice, a resumed
run's checkpoint), the schedule and layout, then the network it starts from."""

from __future__ import annotations

from pathlib import Path

import torch

import common
from common.files import PROBE_PREFIX

from . import checkpoint as ckpt
from .config import DEFAULTS, TrainConfig
from .context import amp_dtype, say
from .datasets import default_workers
from .errors import TrainError
from .lock import LOCK, lock_folder
from .report import LOG, METRICS
from .run import Run, RunPlan
from .strategy import apply_freezing, build_model, starting_weights
from .tasks import TASKS

# Every file a run of any task writes into --out; --overwrite deletes exactly these.
RUN_FILES = tuple(
    dict.fromkeys((ckpt.CHECKPOINT, ckpt.BEST, LOG, METRICS,
                   *(plot for task in TASKS.values() for plot in task.plots)))
)  # fmt: skip


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder: a non-empty ``out`` needs ``--resume`` (carry
    on with the run there) or ``--overwrite`` (replace it)."""
    if resume and overwrite:
        raise TrainError("--resume continues the run in --out and --overwrite replaces it: "
                         "pass one of them")  # fmt: skip
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {str(out)!r} is a file, not a folder")
    if not (resume or overwrite) and out.is_dir():
        # A lock file alone is what a run killed before writing anything leaves; a write
        # probe is another process of this run checking the folder at the same moment.
        entries = sorted(
            p.name for p in out.iterdir() if p.name != LOCK and not p.name.startswith(PROBE_PREFIX)
        )
        if entries:
            shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
            raise TrainError(
                f"--out {str(out)!r} is not empty ({shown}): pass --resume to continue that "
                "run, --overwrite to replace it, or another --out"
            )
    # Now, not at the first checkpoint an epoch (or a feature pass) later.
    common.check_writable(out, "--out")


def own_out(run: Run, out: Path) -> None:
    """Check ``out`` (``check_out``) and make it this run's: the main process takes its
    lock (``train.lock.lock_folder``), held until the run ends (``fit`` releases it), before
    anything is written there. A folder another run holds is refused in one line."""
    cfg = run.config
    check_out(out, cfg.resume, cfg.overwrite)
    if run.context.is_main:
        run.lock = lock_folder(out)
        # Again, now that no other run can write there: one may have filled the folder
        # (and ended) between the first check and the lock.
        check_out(out, cfg.resume, cfg.overwrite)


def prepare_out(out: Path, overwrite: bool) -> None:
    """Create ``out``; with ``overwrite`` delete the previous run's files from it first."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            for stale in out.glob(".*.part"):  # temporary files of an interrupted write
                stale.unlink(missing_ok=True)
    except OSError as exc:
        raise TrainError(
            f"cannot write to --out {str(out)!r} ({exc.strerror or type(exc).__name__})"
        ) from None


def _resume_folder(cfg: TrainConfig) -> Path:
    """The run to resume: ``--out``, else ``runs/<model>-<strategy>``; with ``auto`` the
    one such folder that holds a checkpoint."""
    if cfg.out:
        return Path(cfg.out)
    if cfg.strategy != "auto":
        return Path(f"runs/{cfg.model}-{cfg.strategy}")
    found = sorted(p.parent for p in Path("runs").glob(f"{cfg.model}-*/{ckpt.CHECKPOINT}"))
    if len(found) != 1:
        where = ", ".join(map(str, found)) or "none in runs/"
        raise TrainError(f"--resume with --strategy auto needs --out: runs to resume: {where}")
    return found[0]


def read_data(run: Run) -> None:
    """The phase that reads ``--data`` (the task's way), and settles the loader processes
    and the autocast dtype of the run."""
    cfg, ctx = run.config, run.context
    run.data = run.task.load_data(cfg)
    run.workers = default_workers(cfg.num_workers, ctx.device)
    run.dtype = amp_dtype(cfg.amp, ctx.device)


def _resumed_strategy(run: Run) -> tuple[str, str, dict]:
    """The strategy of the run ``--resume`` continues, read from its checkpoint before
    anything depends on it."""
    cfg = run.config
    resumed = ckpt.load_checkpoint(_resume_folder(cfg) / ckpt.CHECKPOINT)
    ckpt.check_resume(resumed, cfg.model, run.data.classes, task=cfg.task)
    if cfg.strategy not in ("auto", resumed["strategy"]):
        say(run.context, f"resume: the checkpoint trains {resumed['strategy']}; "
                         f"--strategy {cfg.strategy} is ignored")  # fmt: skip
    return resumed["strategy"], "the resumed run's", resumed


def _say_defaults(run: Run, strategy: str) -> None:
    """Name the schedule's defaults the run takes for ``strategy`` (those not given)."""
    cfg, defaults = run.config, DEFAULTS[strategy]
    taken = [
        text
        for given, text in (
            (cfg.epochs, f"{defaults.epochs} epochs"),
            (cfg.lr, f"lr {defaults.lr[cfg.optimizer]:g} ({cfg.optimizer})"),
            (cfg.warmup_epochs, f"{defaults.warmup_epochs:g} warm-up epoch(s) then cosine"),
        )
        if given is None
    ]
    if taken:
        say(run.context, f"defaults for {strategy} (train.config.DEFAULTS): {', '.join(taken)}")


def plan_run(run: Run) -> None:
    """The phase that plans: the strategy (on resume the checkpoint's; ``auto`` the task's
    choice), the starting weights, epochs, learning rate, layout and output folder."""
    cfg, ctx, task = run.config, run.context, run.task
    strategy, reason, resumed = cfg.strategy, "asked for", None
    if cfg.resume:
        strategy, reason, resumed = _resumed_strategy(run)
    elif strategy == "auto":
        strategy, reason = task.choose_strategy(run)
        say(ctx, f"auto: chose {strategy}: {reason}")
    _say_defaults(run, strategy)
    defaults = DEFAULTS[strategy]
    out = Path(cfg.out or f"runs/{cfg.model}-{strategy}")
    if not cfg.out:  # a given --out was checked and locked before any work
        own_out(run, out)
    run.plan = RunPlan(
        strategy=strategy,
        reason=reason,
        weights=starting_weights(cfg.model, strategy, cfg.weights),
        epochs=cfg.epochs if cfg.epochs is not None else defaults.epochs,
        lr=cfg.lr if cfg.lr is not None else defaults.lr[cfg.optimizer],
        warmup_epochs=(
            cfg.warmup_epochs if cfg.warmup_epochs is not None else defaults.warmup_epochs
        ),
        out=out,
        channels_last=task.default_channels_last(ctx.device)
        if cfg.channels_last is None
        else cfg.channels_last,
        resumed=resumed,
        input_size=task.input_size(cfg, run.data),
    )


def build_network(run: Run) -> None:
    """The phase that builds the model on its device (auto's probed one where it is kept),
    its preprocessing (the task's) and what the strategy freezes."""
    cfg, plan = run.config, run.plan
    torch.manual_seed(cfg.seed)
    aux = cfg.aux_weight > 0 and not plan.probe
    model = run.backbone
    if model is None:
        model = build_model(cfg.model, run.n_classes, plan.weights, aux=aux)
    run.pre = run.task.preprocessing(run, model)
    run.freezing = apply_freezing(model, plan.strategy, cfg.unfreeze_from, cfg.freeze_bn,
                                  head_bn_trains=run.task.head_bn_trains)  # fmt: skip
    model.to(run.context.device)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    run.model = model
