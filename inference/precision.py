"""Mixed precision for the image VAEs' networks: ``fp32`` (everything in float32) or ``bf16``
(the encoder's and decoder's convolutions and matrix products under bfloat16 autocast).

What runs in bf16 and what does not:

- the networks: ``torch.autocast(device_type, dtype=torch.bfloat16)`` around the loss or the
  estimator pass lowers exactly the ops on autocast's lower-precision list (convolutions,
  linear layers, matrix products); everything else runs in its inputs' dtype;
- the networks' outputs are cast back to fp32 where they leave them
  (:meth:`probnn.models.vae.VAE.logits`, :func:`probnn.guides.vae.encode_fp32`), so the
  Bernoulli log-likelihood from logits, its sums over pixels, q's density and samples, the
  analytic KL, the log-sum-exp of the importance weights and every per-image total are fp32;
- parameters, gradients and the Adam state stay fp32 (autocast casts weights per op; the
  backward pass runs outside autocast, as PyTorch recommends).

A leaf module of :mod:`probnn.inference` (imports nothing from the project).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    return precision


def autocast(precision: str, device: torch.device | str):
    """The context the networks run in: bfloat16 autocast on ``device``'s type for
    ``"bf16"``, nothing for ``"fp32"``."""
    check_precision(precision)
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
