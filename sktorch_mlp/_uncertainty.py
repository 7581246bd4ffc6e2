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

from ._seeding import seeded_torch_rng
from ._training.net import EVAL_BATCH_SIZE


def prediction_spread(net, X, n_passes, seed):
    """Standard deviation of the members' predictions over dropout passes.

    Parameters
    ----------
    net : MLPNet
        A trained net.
    X : ndarray of shape (n_samples, n_features)
        Inputs, already transformed as for ``predict``.
    n_passes : int
        Forward passes with dropout active. One suffices without dropout.
    seed : int
        Seeds the dropout masks.

    Returns
    -------
    ndarray of shape (n_samples, n_outputs)
        Standard deviation, over every pass and ensemble member, of the
        prediction of the standardized target.
    """
    module = net.module_
    spread = []
    module.train()  # dropout on
    try:
        with seeded_torch_rng(seed, net.device), torch.inference_mode():
            for start in range(0, len(X), EVAL_BATCH_SIZE):
                # float32, as trained: a spread needs no float64 digits, and costs half as much.
                rows = torch.as_tensor(X[start : start + EVAL_BATCH_SIZE], dtype=torch.float32)
                draws = module.member_predictions(rows.to(net.device), n_passes)
                spread.append(draws.double().std(dim=0, correction=0).cpu().numpy())
    finally:
        module.eval()
    return np.concatenate(spread)
