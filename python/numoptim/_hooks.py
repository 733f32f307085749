"""``RemovableHandle``: what registering a hook returns, as torch.utils.hooks'."""

from __future__ import annotations

import weakref
from collections import OrderedDict


class RemovableHandle:
    """A handle that removes its hook from the dict it was registered in.

    It holds the dict weakly, so a handle does not keep an optimizer's hooks alive, and
    works as a context manager that removes the hook on exit.
    """

    next_id: int = 0

    def __init__(self, hooks_dict: OrderedDict) -> None:
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = RemovableHandle.next_id
        RemovableHandle.next_id += 1

    def remove(self) -> None:
        """Unregisters the hook (a no-op if it is already gone)."""
        hooks_dict = self.hooks_dict_ref()
        if hooks_dict is not None and self.id in hooks_dict:
            del hooks_dict[self.id]

    def __enter__(self) -> RemovableHandle:  # noqa: PYI034
        return self

    def __exit__(self, *args: object) -> None:
        self.remove()
