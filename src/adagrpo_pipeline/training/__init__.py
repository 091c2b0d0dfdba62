"""What every training loop of the project shares (SFT, the ranker, the RL stage): the device
rule, the optimiser and its update, the resumable state and its fingerprint, and the loop scaffold. Kedro-free."""

from .device import make_accelerator, resolve_device
from .distributed import Part, Ranks, launch
from .loop import LoopResult, Schedule, TrainingLoop, batch_indices, validation_subset
from .optim import Trainee, prepare_training
from .selection import SELECT_ON, Selection, best_row, best_step, improves, selection_metric
from .state import cpu_state_dict, fingerprint, load_training_state, save_training_state

__all__ = [
    "SELECT_ON",
    "LoopResult",
    "Part",
    "Ranks",
    "Schedule",
    "Selection",
    "Trainee",
    "TrainingLoop",
    "batch_indices",
    "best_row",
    "best_step",
    "cpu_state_dict",
    "fingerprint",
    "improves",
    "launch",
    "load_training_state",
    "make_accelerator",
    "prepare_training",
    "resolve_device",
    "save_training_state",
    "selection_metric",
    "validation_subset",
]
