"""What every training loop of the project shares (SFT, the ranker, the RL stage): the device
rule, the optimiser and its update, the resumable state and its fingerprint, and the loop scaffold. Kedro-free."""

from .device import make_accelerator, resolve_device
from .distributed import Part, Ranks, launch
from .loop import (
    LoopResult,
    Schedule,
    Selection,
    TrainingLoop,
    batch_indices,
    validation_subset,
)
from .optim import Trainee, prepare_training
from .state import cpu_state_dict, fingerprint, load_training_state, save_training_state

__all__ = [
    "LoopResult",
    "Part",
    "Ranks",
    "Schedule",
    "Selection",
    "Trainee",
    "TrainingLoop",
    "batch_indices",
    "cpu_state_dict",
    "fingerprint",
    "launch",
    "load_training_state",
    "make_accelerator",
    "prepare_training",
    "resolve_device",
    "save_training_state",
    "validation_subset",
]
