"""numoptim: torch.optim for NumPy, with SIMD/OpenMP C++ kernels.

The optimizers, their ``param_groups``, ``state`` and ``state_dict`` follow
``torch.optim`` 2.13 name for name; parameters are :class:`Parameter` arrays whose
``grad`` the optimizer reads and whose values it updates in place.
"""

from . import _core
from ._config import get_num_threads, set_num_threads, show_config
from .adam import Adam
from .adamw import AdamW
from .optimizer import Optimizer
from .parameter import Parameter
from .serialization import load, save
from .sgd import SGD
from .sparse import RowSparseGrad
from . import lr_scheduler, swa_utils

__version__ = _core.__version__

__all__ = [
    "Adam",
    "AdamW",
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
