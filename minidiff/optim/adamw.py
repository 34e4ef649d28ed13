r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019, arXiv 1711.05101) -- the baseline.

We register ``torch.optim.AdamW`` itself as ``"adamw"``: every other optimizer in this package is compared
against it, so it should be the implementation everybody else uses.

The update (paper, Algorithm 2), with gradient :math:`g_t`, moments :math:`m, v`, step size :math:`\alpha`,
schedule multiplier :math:`\eta_t` and decay :math:`\lambda`::

    m_t = β1 m_{t-1} + (1 - β1) g_t
    v_t = β2 v_{t-1} + (1 - β2) g_t²
    m̂_t = m_t / (1 - β1^t),    v̂_t = v_t / (1 - β2^t)
    θ_t = θ_{t-1} - η_t (α m̂_t / (√v̂_t + ε) + λ θ_{t-1})

The decay is *decoupled*: it is applied to θ directly instead of being added to the gradient as an L2 term,
where Adam's preconditioner would shrink it for parameters with large gradients.

torch's defaults: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False``. Language-model
practice uses ``betas=(0.9, 0.95)`` and ``weight_decay=0.1``.

Convention difference: torch computes ``θ ← θ (1 - lr·λ)`` and then the Adam step with ``lr`` -- the decay is
multiplied by the *learning rate* (which already contains the schedule), whereas the paper multiplies λ by the
schedule multiplier η_t alone. A paper λ therefore corresponds to torch's ``weight_decay = λ / α``.
"""

from __future__ import annotations

import torch

from minidiff.optim.registry import register

__all__ = ["AdamW"]

AdamW = register("adamw")(torch.optim.AdamW)
