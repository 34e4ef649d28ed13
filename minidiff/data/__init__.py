"""Data: vocabularies, synthetic tasks with exact evaluators, and a small shipped text corpus."""

from minidiff.data.tasks import Batch, Example, Task, available_tasks, extract_answers, get_task, to_batch
from minidiff.data.vocab import SPECIALS, Vocab

__all__ = [
    "SPECIALS",
    "Vocab",
    "Batch",
    "Example",
    "Task",
    "available_tasks",
    "extract_answers",
    "get_task",
    "to_batch",
]
