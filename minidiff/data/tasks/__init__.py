"""Synthetic tasks, one per file, each registered under a name (see ``base.py`` for the protocol)."""

from minidiff.data.tasks.base import (
    Batch,
    Example,
    Task,
    available_tasks,
    check_n,
    extract_answers,
    get_task,
    register,
    to_batch,
)

__all__ = [
    "Batch",
    "Example",
    "Task",
    "available_tasks",
    "check_n",
    "extract_answers",
    "get_task",
    "register",
    "to_batch",
]
