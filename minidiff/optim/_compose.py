"""``ComposedOptimizer``: several optimizers behind one ``step()``, looking like one ``torch.optim.Optimizer``.

Matrix optimizers need a partner (AdamW for embeddings, head, norms and biases) and wrappers add state of their
own (MD decoupling's gains). Users and ``minidiff.train.fit`` should still see *one* optimizer:

* ``param_groups`` is the concatenation of the children's groups -- the very same dicts, so an LR scheduler that
  writes ``group["lr"]`` drives every child, and ``fit`` logs group 0's lr;
* ``state[p]`` reads the state of whichever child owns ``p`` (spectra probes read momenta this way);
* ``step(closure)`` evaluates the closure once, then steps every child; step pre/post hooks work as usual
  (``torch.optim.Optimizer.__init__`` runs, so ``register_step_post_hook`` is available);
* ``state_dict()`` is ``{"children": {name: child.state_dict()}, "extra": ...}`` -- plain dicts, lists and tensors,
  loadable with ``torch.load(weights_only=True)``; ``load_state_dict`` restores each child and re-links the groups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

__all__ = ["ComposedOptimizer"]


class _OwnedState(Mapping):
    """Read-through view of the children's ``state``: ``view[p]`` is the owning child's ``state[p]``."""

    def __init__(self, children: dict[str, torch.optim.Optimizer]) -> None:
        self._children = children
        self._owner = {id(p): opt for opt in children.values() for g in opt.param_groups for p in g["params"]}

    def __getitem__(self, p: torch.Tensor) -> dict:
        opt = self._owner.get(id(p))
        if opt is None:
            raise KeyError("this tensor is not a parameter of the optimizer")
        return opt.state[p]

    def __iter__(self) -> Iterator[torch.Tensor]:
        for opt in self._children.values():
            yield from opt.state

    def __len__(self) -> int:
        return sum(len(opt.state) for opt in self._children.values())


class ComposedOptimizer(torch.optim.Optimizer):
    """Children optimizers (disjoint parameters) stepped together; see the module docstring."""

    def __init__(self, children: dict[str, torch.optim.Optimizer]) -> None:
        if not children:
            raise ValueError("children must hold at least one optimizer")
        for name, child in children.items():
            if not isinstance(child, torch.optim.Optimizer):
                raise TypeError(f"child {name!r} must be a torch.optim.Optimizer, got {type(child).__name__}")
        params = [p for child in children.values() for g in child.param_groups for p in g["params"]]
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter appears in more than one child optimizer")
        self.children = dict(children)
        self._initialising = True
        super().__init__(params, {})  # sets up hooks; the throw-away group is replaced below
        self._initialising = False
        self._link()

    def __getstate__(self) -> dict[str, Any]:  # torch's keeps only defaults/state/param_groups
        state = dict(self.__dict__)
        state.pop("state", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._link()

    def _link(self) -> None:
        self.param_groups = [g for child in self.children.values() for g in child.param_groups]
        self.state = _OwnedState(self.children)  # type: ignore[assignment]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if getattr(self, "_initialising", False):
            return super().add_param_group(param_group)
        raise TypeError(
            f"{type(self).__name__} has no groups of its own: add the group to a child, "
            f"e.g. opt.children[{next(iter(self.children))!r}].add_param_group(...), then call opt.relink()"
        )

    def relink(self) -> None:
        """Re-read the children's groups after changing them directly."""
        self._link()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for child in self.children.values():
            child.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for child in self.children.values():
            child.zero_grad(set_to_none=set_to_none)

    def _extra_state_dict(self) -> dict[str, Any]:
        """State a subclass keeps outside its children (plain containers and tensors)."""
        return {}

    def _load_extra_state_dict(self, extra: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state_dict` returned."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "children": {name: child.state_dict() for name, child in self.children.items()},
            "extra": self._extra_state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("children")
        if not isinstance(saved, dict) or set(saved) != set(self.children):
            found = sorted(saved) if isinstance(saved, dict) else None
            raise ValueError(
                f"state_dict must come from a {type(self).__name__} with children {sorted(self.children)}, "
                f"got children {found}"
            )
        for name, child in self.children.items():
            child.load_state_dict(saved[name])
        self._link()
        self._load_extra_state_dict(state_dict.get("extra", {}))
