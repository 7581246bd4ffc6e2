"""Forward and backward pass of the default's four 256 x 256 members, float32 against bfloat16.

The matrix products of the hand-written training step on random data of California housing's
width (272 embedded inputs, batch 128): once in float32, once with the weights and activations
cast to bfloat16 and the weight gradients cast back to float32 for AdamW, casts included. Fastest of
10 runs of 100 steps each, alternating::

    OMP_NUM_THREADS=2 python benchmarks/bfloat16_step.py

bfloat16 is fast only on CPUs with AMX matrix units (or GPUs with tensor cores); on others it is
many times slower than float32.
"""

import time

import torch

N_MEMBERS, BATCH, WIDTH, INPUT_WIDTH = 4, 128, 256, 272
REPEATS, STEPS = 10, 100


def make_layers():
    """Weights and zero biases of two hidden layers and a one-unit output, per member."""
    shapes = [(INPUT_WIDTH, WIDTH), (WIDTH, WIDTH), (WIDTH, 1)]
    weights = [torch.randn(N_MEMBERS, *shape) * 0.05 for shape in shapes]
    biases = [torch.zeros(N_MEMBERS, 1, shape[1]) for shape in shapes]
    return weights, biases


def step(weights, biases, X, y, dtype):
    """One forward and backward pass through the members' layers; returns the weight gradients."""
    if dtype is not torch.float32:
        weights = [weight.to(dtype) for weight in weights]
        biases = [bias.to(dtype) for bias in biases]
    hidden = X.to(dtype).expand(N_MEMBERS, *X.shape)
    layer_inputs = []
    for weight, bias in zip(weights[:-1], biases[:-1], strict=True):
        layer_inputs.append(hidden)
        hidden = torch.baddbmm(bias, hidden, weight).clamp_min_(0)
    layer_inputs.append(hidden)
    y_pred = torch.baddbmm(biases[-1], hidden, weights[-1])
    gradient = (y_pred.float() - y).mul_(2 / y_pred.numel()).to(dtype)
    weight_gradients = []
    for index in range(len(weights) - 1, -1, -1):
        layer_input = layer_inputs[index]
        weight_gradients.append(torch.bmm(layer_input.transpose(1, 2), gradient).float())
        if index > 0:
            input_gradient = torch.bmm(gradient, weights[index].transpose(1, 2))
            gradient = torch.ops.aten.threshold_backward(input_gradient, layer_input, 0)
    return weight_gradients


def main():
    torch.manual_seed(0)
    X, y = torch.randn(BATCH, INPUT_WIDTH), torch.randn(BATCH, 1)
    dtypes = (torch.float32, torch.bfloat16)
    layers = {dtype: make_layers() for dtype in dtypes}
    best = dict.fromkeys(dtypes, float("inf"))
    for dtype in dtypes:  # warm-up
        for _ in range(30):
            step(*layers[dtype], X, y, dtype)
    # The two alternate, so that the machine's slow spells fall on both.
    for _ in range(REPEATS):
        for dtype in dtypes:
            start = time.perf_counter()
            for _ in range(STEPS):
                step(*layers[dtype], X, y, dtype)
            best[dtype] = min(best[dtype], (time.perf_counter() - start) / STEPS)
    for dtype in dtypes:
        print(f"{dtype}: {best[dtype] * 1e3:.2f} ms per step (forward and backward, fastest run)")
    print(f"float32 / bfloat16: {best[torch.float32] / best[torch.bfloat16]:.2f}x")


if __name__ == "__main__":
    main()
