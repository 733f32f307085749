"""numoptim: torch.optim for NumPy, with SIMD/OpenMP C++ kernels.

The optimizers, their ``param_groups``, ``state`` and ``state_dict`` follow
``torch.optim`` 2.13 name for name; parameters are :class:`Parameter` arrays whose
``grad`` the optimizer reads and whose values it updates in place.
"""

# The native module first, so that a missing one is explained before anything uses it.
from ._load import load_core

_core = load_core()

# distributed imports mpi4py only when one of its functions runs.
from . import distributed, lr_scheduler, plotting, swa_utils, utils
from ._config import get_num_threads, set_num_threads, show_config
from .adabelief import AdaBelief
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam
from .adam8bit import Adam8bit, AdamW8bit
from .adamax import Adamax
from .adamw import AdamW
from .adan import Adan
from .ademamix import AdEMAMix
from .ademamix8bit import AdEMAMix8bit
from .adopt import Adopt
from .asgd import ASGD
from .lamb import Lamb
from .laprop import LaProp
from .lars import Lars
from .lbfgs import LBFGS
from .lion import Lion
from .lion8bit import Lion8bit
from .muon import Muon
from .nadam import NAdam
from .nadamw import NAdamW
from .optimizer import Optimizer
from .parameter import Parameter
from .prodigy import Prodigy
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedule_free import AdamWScheduleFree, RAdamScheduleFree, SGDScheduleFree
from .serialization import load, save
from .sgd import SGD
from .sparse import RowSparseGrad
from .sparse_adam import SparseAdam

__version__ = _core.__version__

# HIPS autograd, when imported before numoptim, learns Parameter now (else when the first
# Parameter is made): see parameter.register_with_autograd.
from .parameter import register_with_autograd

register_with_autograd()
del register_with_autograd

__all__ = [
    "ASGD",
    "LBFGS",
    "SGD",
    "AdEMAMix",
    "AdEMAMix8bit",
    "AdaBelief",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "Adam8bit",
    "AdamW",
    "AdamW8bit",
    "AdamWScheduleFree",
    "Adamax",
    "Adan",
    "Adopt",
    "LaProp",
    "Lamb",
    "Lars",
    "Lion",
    "Lion8bit",
    "Muon",
    "NAdam",
    "NAdamW",
    "Optimizer",
    "Parameter",
    "Prodigy",
    "RAdam",
    "RAdamScheduleFree",
    "RMSprop",
    "RowSparseGrad",
    "Rprop",
    "SGDScheduleFree",
    "SparseAdam",
    "distributed",
    "get_num_threads",
    "load",
    "lr_scheduler",
    "plotting",
    "save",
    "set_num_threads",
    "show_config",
    "swa_utils",
    "utils",
]
