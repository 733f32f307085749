"""numoptim: torch.optim for NumPy, with SIMD/OpenMP C++ kernels.

The optimizers, their ``param_groups``, ``state`` and ``state_dict`` follow
``torch.optim`` 2.13 name for name; parameters are :class:`Parameter` arrays whose
``grad`` the optimizer reads and whose values it updates in place.
"""

from . import _core
from ._config import get_num_threads, set_num_threads, show_config
from .adafactor import Adafactor
from .adam import Adam
from .adamw import AdamW
from .lbfgs import LBFGS
from .muon import Muon
from .optimizer import Optimizer
from .parameter import Parameter
from .serialization import load, save
from .sgd import SGD
from .sparse import RowSparseGrad

__version__ = _core.__version__

__all__ = [
    "Adafactor",
    "Adam",
    "AdamW",
    "LBFGS",
    "Muon",
    "Optimizer",
    "Parameter",
    "RowSparseGrad",
    "SGD",
    "get_num_threads",
    "load",
    "save",
    "set_num_threads",
    "show_config",
]
