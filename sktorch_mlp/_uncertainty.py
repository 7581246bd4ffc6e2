"""Predictive spread from Monte-Carlo dropout and the ensemble's members.

With dropout kept on at prediction, every forward pass draws another thinned
network; an ensemble adds networks trained from different initial weights. The
spread of their predictions for a sample measures how much the model's answer
depends on which of these networks is asked (Gal & Ghahramani, "Dropout as a
Bayesian Approximation", 2016; Lakshminarayanan et al., "Deep Ensembles", 2017).
It reflects the model's uncertainty about its weights, not the noise in the
target, and it is not calibrated: see the docs' uncertainty page.
"""

import numpy as np
import torch
from torch.func import functional_call

from ._engine import EVAL_BATCH_SIZE
from ._seeding import seeded_torch_rng


def prediction_spread(net, X, n_passes, seed):
    """Standard deviation of the members' predictions over dropout passes.

    Parameters
    ----------
    net : MLPNet
        A trained net.
    X : ndarray of shape (n_samples, n_features), float64
        Inputs, already transformed as for ``predict``.
    n_passes : int
        Forward passes with dropout active. One suffices without dropout.
    seed : int
        Seeds the dropout masks.

    Returns
    -------
    ndarray of shape (n_samples, n_outputs)
        Standard deviation, over every pass and ensemble member, of the
        prediction of the standardized target, in float64.
    """
    module = net.module_
    device = net.device
    weights = {name: tensor.double() for name, tensor in module.state_dict().items()}
    spread = []
    module.train()  # dropout on; an ensemble then returns each member's prediction
    try:
        with seeded_torch_rng(seed, device), torch.inference_mode():
            for start in range(0, len(X), EVAL_BATCH_SIZE):
                rows = torch.from_numpy(X[start : start + EVAL_BATCH_SIZE]).to(device)
                draws = torch.stack(
                    [functional_call(module, weights, (rows,)) for _ in range(n_passes)]
                )
                # (passes, [members,] rows, outputs) -> (draws, rows, outputs)
                draws = draws.reshape(-1, *draws.shape[-2:])
                spread.append(draws.std(dim=0, correction=0).cpu().numpy())
    finally:
        module.eval()
    return np.concatenate(spread)
