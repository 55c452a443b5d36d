"""Training tasks, registered by name (see :mod:`edgecnn.train.tasks.base`): ``classify``, ``steer``,
``segment`` and ``navigate``.

Importing this package registers every task; a new task is a module here with a ``@register_task`` class,
imported below.
"""

from edgecnn.train.tasks import classify, navigate, segment, steer  # noqa: F401  (registration)
from edgecnn.train.tasks.base import (
    Task,
    get_task,
    head_choices,
    list_tasks,
    register_task,
)

__all__ = ["Task", "get_task", "head_choices", "list_tasks", "register_task"]
