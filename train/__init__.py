"""The transfer-learning trainer: linear probes, frozen feature extraction, fine-tuning and
training from scratch for every registered network, on CUDA, the CPU and several processes.

>>> import train
>>> results = train.fit(train.TrainConfig(model="lenet5", data="digits", strategy="scratch"))
>>> results["top1"]
"""

from .config import STRATEGIES, TrainConfig
from .datasets import load_data, load_digits_arrays
from .engine import fit
from .errors import TrainError
from .predict import evaluate_checkpoint, load_trained, predict

__all__ = [
    "STRATEGIES",
    "TrainConfig",
    "TrainError",
    "evaluate_checkpoint",
    "fit",
    "load_data",
    "load_digits_arrays",
    "load_trained",
    "predict",
]
