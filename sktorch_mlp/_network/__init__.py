"""The network that ``TorchMLPRegressor`` trains, one concern a module.

- ``mlp``: the MLP itself, ``Linear -> ReLU -> Dropout`` blocks and a linear output, one
  network or an ensemble of them;
- ``embeddings``: the periodic embedding of each numeric feature in front of the hidden layers;
- ``ensembling``: layers that compute the members of an ensemble in one batched product;
- ``dropout``: dropout with masks drawn from random integer bits, a block at a time.

Nothing here imports from the rest of the package.
"""
