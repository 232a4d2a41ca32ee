"""The tasks a run trains for, one module each: ``--task`` names one of ``TASKS``. A new
task is a ``train.run.Task`` subclass in a module here, a line in ``TASKS`` and its name
in ``train.config.TASKS`` (the command line's choices)."""

from __future__ import annotations

from ..run import Task
from .classification import ClassificationTask
from .segmentation import SegmentationTask

TASKS: dict[str, type[Task]] = {task.name: task for task in (ClassificationTask, SegmentationTask)}


def task_for(name: str) -> Task:
    """The task ``--task name`` trains for."""
    return TASKS[name]()


__all__ = ["TASKS", "ClassificationTask", "SegmentationTask", "Task", "task_for"]
