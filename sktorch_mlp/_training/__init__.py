"""How ``TorchMLPRegressor`` trains its network, one concern a module.

- ``net``: the skorch net (``NeuralNetRegressor`` subclass), its loss and training step;
- ``backprop``: the hand-written backward pass of the network under MSE;
- ``optim``: AdamW's fused kernel called directly on flat parameter storage;
- ``averaging``: the moving average of the weights that is validated and kept;
- ``batches``: mini-batches sliced from tensors already on the training device;
- ``progress``: the progress bar and epoch table shown by ``verbose``;
- ``faults``: non-finite losses, running out of memory, and other failures in training;
- ``device``: which device trains, and which one a saved model loads on.

Modules here import from each other and from ``sktorch_mlp._network``, never from the facade.
"""
