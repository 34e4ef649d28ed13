"""Graph reachability: given edges and a query ``(s, t)``, write a path from ``s`` to ``t`` or ``none``.

Each example is an Erdos-Renyi graph on ``n_nodes`` nodes: every ordered pair (``directed=True``) or unordered
pair (``directed=False``) is an edge with probability ``edge_prob``. The edges appear in random order, each as
two node tokens (an undirected edge in a random orientation). The query is reachable with probability 1/2
whenever the graph has both kinds of pairs, so always answering ``none`` scores about 50%.

Tokens: ``v0`` ... ``v{n_nodes-1}``, ``?``, ``=``, ``none``. Layout::

    prompt = u1 w1 u2 w2 ... (one pair per edge), ?, s, t, =
    answer = a shortest path s ... t (node tokens, both ends included), or the single token none

What it measures: multi-hop search over a structure given in arbitrary order. ``correct`` accepts *any* walk
along edges from ``s`` to ``t`` (and ``none`` exactly when ``t`` is unreachable); ``shortest`` also asks for
the fewest edges; ``decision`` only asks whether the answer said reachable/unreachable correctly.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence

from minidiff.data.tasks.base import Example, Task, check_n, register
from minidiff.data.vocab import Vocab

__all__ = ["ReachabilityTask", "bfs_path"]

QUERY, SEP, NONE = "?", "=", "none"


def bfs_path(adjacency: dict[int, set[int]], source: int, target: int) -> list[int] | None:
    """A shortest path ``source ... target`` (both included) by breadth-first search, or ``None``."""
    parent: dict[int, int | None] = {source: None}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        if node == target:
            path = [node]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])
            return path[::-1]
        for nxt in sorted(adjacency.get(node, ())):
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


@register("reachability")
class ReachabilityTask(Task):
    """Path-or-none queries on small random graphs; ``check``: ``correct``, ``shortest``, ``decision``."""

    def __init__(self, n_nodes: int = 8, edge_prob: float = 0.15, directed: bool = True) -> None:
        if not isinstance(n_nodes, int) or isinstance(n_nodes, bool) or not 2 <= n_nodes <= 16:
            raise ValueError(f"n_nodes must be an int in [2, 16], got {n_nodes!r}")
        if not 0.0 < edge_prob <= 1.0:
            raise ValueError(f"edge_prob must lie in (0, 1], got {edge_prob!r}")
        self.n_nodes, self.edge_prob, self.directed = n_nodes, edge_prob, bool(directed)
        self.vocab = Vocab([*(f"v{i}" for i in range(n_nodes)), QUERY, SEP, NONE])
        self._first_node = self.vocab.index["v0"]

    def _node(self, token: int) -> int | None:
        index = int(token) - self._first_node
        return index if 0 <= index < self.n_nodes else None

    def adjacency(self, edges: Sequence[tuple[int, int]]) -> dict[int, set[int]]:
        adjacency: dict[int, set[int]] = {v: set() for v in range(self.n_nodes)}
        for u, w in edges:
            adjacency[u].add(w)
            if not self.directed:
                adjacency[w].add(u)
        return adjacency

    def _random_graph(self, rng: random.Random) -> list[tuple[int, int]]:
        nodes = range(self.n_nodes)
        pairs = [(u, w) for u in nodes for w in nodes if u != w and (self.directed or u < w)]
        edges = [pair for pair in pairs if rng.random() < self.edge_prob]
        if not self.directed:
            edges = [pair if rng.random() < 0.5 else pair[::-1] for pair in edges]
        rng.shuffle(edges)
        return edges

    def generate(self, n: int, seed: int) -> list[Example]:
        check_n(n)
        rng = random.Random(seed)
        examples = []
        for _ in range(n):
            edges = self._random_graph(rng)
            adjacency = self.adjacency(edges)
            pairs = [(s, t) for s in range(self.n_nodes) for t in range(self.n_nodes) if s != t]
            paths = {pair: bfs_path(adjacency, *pair) for pair in pairs}
            reachable = [pair for pair in pairs if paths[pair] is not None]
            unreachable = [pair for pair in pairs if paths[pair] is None]
            want_reachable = rng.random() < 0.5
            pool = reachable if (want_reachable and reachable) or not unreachable else unreachable
            source, target = rng.choice(pool)
            path = paths[source, target]
            answer = [f"v{v}" for v in path] if path else [NONE]
            edge_tokens = [f"v{v}" for edge in edges for v in edge]
            prompt = self.vocab.encode([*edge_tokens, QUERY, f"v{source}", f"v{target}", SEP])
            meta = {"edges": edges, "source": source, "target": target, "reachable": path is not None}
            examples.append(Example(prompt, self.vocab.encode(answer), meta))
        return examples

    def parse_prompt(self, prompt: Sequence[int]) -> tuple[list[tuple[int, int]], int, int]:
        """The edge list, source and target encoded in a prompt."""
        nodes = [self._node(t) for t in prompt[:-4]]
        return list(zip(nodes[::2], nodes[1::2])), self._node(prompt[-3]), self._node(prompt[-2])

    def check(self, example: Example, answer: Sequence[int]) -> dict[str, float]:
        edges, source, target = self.parse_prompt(example.prompt)
        adjacency = self.adjacency(edges)
        reference = bfs_path(adjacency, source, target)
        said_none = len(answer) == 1 and int(answer[0]) == self.vocab.index[NONE]
        path = [self._node(t) for t in answer]
        walk = (
            bool(path)
            and None not in path
            and path[0] == source
            and path[-1] == target
            and all(w in adjacency[u] for u, w in zip(path, path[1:]))
        )
        correct = said_none if reference is None else walk
        decision = said_none if reference is None else (bool(path) and path[0] is not None)
        return {
            "correct": float(correct),
            "shortest": float(correct and (reference is None or len(path) == len(reference))),
            "decision": float(decision),
        }

    def render(self, example: Example, answer: Sequence[int] | None = None) -> str:
        edges, source, target = self.parse_prompt(example.prompt)
        arrow = "->" if self.directed else "--"
        ids = example.answer if answer is None else [int(t) for t in answer]
        shown = " ".join(self.vocab.symbols[t] if 0 <= t < len(self.vocab) else "?" for t in ids)
        return (
            f"edges: {', '.join(f'{u}{arrow}{w}' for u, w in edges)}\nquery: {source} to {target}?  {shown}"
        )
