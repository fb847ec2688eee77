#!/usr/bin/env python3
"""PyTorch → ONNX → formicary: train a small CNN on the digits in PyTorch, optionally block-prune it so formicary's
sparse kernels skip the zeros, export it with torch.onnx.export, compile it to an int8 .tflite with formicary
(onnx2tf + calibration, TFLM-checked, accuracy against onnxruntime) and bench it on a virtual board.

    pip install torch 'formicary[onnx]'         # CPU torch is enough; onnxscript for the default exporter
    python examples/pytorch_to_formicary.py --out /tmp/pt --json > pt.json                  # dense
    python examples/pytorch_to_formicary.py --out /tmp/pt-sparse --prune 0.6 --json > pts.json  # 60 % zero blocks
    python examples/pytorch_to_formicary.py --export-only tests/compile/data/digits_cnn_torch.onnx  # the test model

What it does:
1. sklearn digits split as `formicary demo` splits them (formicary.model.zoo.digits_splits, seed 0), channels-first
   (N, 1, 8, 8) as PyTorch uses them; calib.npz and val.npz are written in that layout (formicary transposes them).
2. The digits CNN of formicary's demo, in PyTorch: conv 1→8 3x3, conv 8→16 3x3 stride 2, linear 256→32, 32→10.
   Adam 3e-3, --epochs epochs, batch 32, torch.manual_seed(--seed).
3. --prune S: block-structured magnitude pruning of conv2, fc1, fc2: blocks of 4 consecutive *input channels* at
   one kernel tap (the blocks formicary's sparse CONV_2D / FULLY_CONNECTED kernels skip; fc1's inputs are grouped
   by channel of the flattened 16x4x4 map, which is what they become in the NHWC .tflite). The S fraction of
   blocks with the smallest L2 norm is masked (torch.nn.utils.prune.custom_from_mask), the model fine-tuned
   --epochs more epochs with the masks on, then the masks made permanent (prune.remove).
4. torch.onnx.export (the torch.export-based exporter when onnxscript is installed, else the TorchScript one),
   with a fixed 1x1x8x8 input: microcontroller models have no dynamic shapes.
5. formicary.compile.compile_model(model.onnx, calib=calib.npz, val=val.npz): int8, the same call as
   `formicary compile model.onnx --calib calib.npz --val val.npz -o OUT`.
6. --board (default qemu-m4, 'none' to skip): `formicary bench` on the board with --kernels (default dsp) on the
   400 val digits: accuracy on the device and retired instructions per inference.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 4  # formicary.codegen.ops.sparse.BLOCK


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("pytorch-digits"), help="working directory")
    p.add_argument("--epochs", type=int, default=15, help="training epochs (and fine-tuning epochs after pruning)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prune", type=float, default=0.0, help="fraction of 4-channel weight blocks to zero (0: dense)")
    p.add_argument("--board", default="qemu-m4", help="virtual board to bench on; 'none' to skip")
    p.add_argument("--kernels", default="dsp", help="formicary kernel set for the bench")
    p.add_argument("--export-only", type=Path, default=None, help="only train and export the .onnx to this path")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    return p.parse_args(argv)


def build_model():
    import torch
    from torch import nn

    class DigitsCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc1 = nn.Linear(16 * 4 * 4, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = torch.relu(self.conv1(x))
            x = torch.relu(self.conv2(x))
            x = torch.flatten(x, 1)
            return self.fc2(torch.relu(self.fc1(x)))  # logits: formicary takes the top-1

    return DigitsCNN()


def train(model, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> float:
    import torch

    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 32):
            idx = order[i:i + 32]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    return float(loss)


def block_mask(weight, sparsity: float, channels_of_input: int):
    """Mask zeroing the `sparsity` fraction of blocks of BLOCK consecutive input channels (per output row and
    tap) with the smallest L2 norm. The weight is viewed as [out, channels_of_input, taps]: a conv's
    [out, in, kh, kw], or a linear layer's [out, C*H*W] read from a flattened [C, H, W] map."""
    import torch

    out = weight.shape[0]
    w = weight.detach().reshape(out, channels_of_input, -1)
    pad = -channels_of_input % BLOCK
    if pad:
        w = torch.cat([w, torch.zeros(out, pad, w.shape[2])], dim=1)
    blocks = w.reshape(out, -1, BLOCK, w.shape[2])                      # [out, blocks, BLOCK, taps]
    norms = blocks.pow(2).sum(dim=2)                                     # [out, blocks, taps]
    k = int(round(sparsity * norms.numel()))
    keep = torch.ones_like(norms)
    if k:
        keep.view(-1)[torch.argsort(norms.reshape(-1))[:k]] = 0.0
    mask = keep.unsqueeze(2).expand(-1, -1, BLOCK, -1).reshape(out, -1, w.shape[2])[:, :channels_of_input]
    return mask.reshape(weight.shape).contiguous()


def prune_blocks(model, sparsity: float, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> dict[str, float]:
    from torch.nn.utils import prune

    layers = {"conv2": (model.conv2, 8), "fc1": (model.fc1, 16), "fc2": (model.fc2, 32)}
    for module, channels in layers.values():
        prune.custom_from_mask(module, "weight", block_mask(module.weight, sparsity, channels))
    train(model, x, y, epochs, seed + 1)   # fine-tune with the masks applied
    zeros = {}
    for name, (module, _) in layers.items():
        prune.remove(module, "weight")     # masks baked into the weights: plain zeros in the export
        zeros[name] = round(float((module.weight == 0).float().mean()), 4)
    return zeros


def export(model, path: Path) -> str:
    import importlib.util

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    example = (torch.zeros(1, 1, 8, 8),)
    if importlib.util.find_spec("onnxscript") is not None:
        with contextlib.redirect_stdout(sys.stderr):  # the exporter reports its passes on stdout
                torch.onnx.export(model, example, str(path), input_names=["image"], output_names=["logits"],
                              dynamo=True, external_data=False)
        return "torch.export-based (dynamo=True)"
    torch.onnx.export(model, example, str(path), input_names=["image"], output_names=["logits"], dynamo=False)
    return "TorchScript-based (dynamo=False)"


def _kernels_chosen(model: Path, kernel_set: str, out: Path) -> dict[int, str]:
    """The kernel function codegen picks for each op (the sparse ones show the pruning paid)."""
    from formicary.codegen.generate import generate

    return {op.index: op.kernel for op in generate(model, out, kernels=kernel_set).ops}


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    import torch

    from formicary.model.zoo import digits_splits

    torch.set_num_threads(1)
    splits = digits_splits(seed=0)
    nchw = {name: getattr(splits, name).x.transpose(0, 3, 1, 2).copy() for name in ("train", "calib", "val")}
    result: dict[str, Any] = {"seed": args.seed, "epochs": args.epochs, "prune": args.prune,
                              "torch": torch.__version__}
    torch.manual_seed(args.seed)  # the initial weights
    model = build_model()
    start = time.perf_counter()
    result["train_loss"] = train(model, nchw["train"], splits.train.y, args.epochs, args.seed)
    if args.prune:
        result["zero_weights"] = prune_blocks(model, args.prune, nchw["train"], splits.train.y, args.epochs,
                                              args.seed)
    result["train_seconds"] = round(time.perf_counter() - start, 2)
    with torch.no_grad():
        logits = model(torch.from_numpy(nchw["val"])).numpy()
    result["torch_val_accuracy"] = round(float((logits.argmax(1) == splits.val.y).mean()), 4)
    onnx_path = args.export_only or args.out / "model.onnx"
    result["exporter"] = export(model, onnx_path)
    result["onnx"] = str(onnx_path)
    if args.export_only:
        print(json.dumps(result, indent=2) if args.json else f"exported {onnx_path} ({result['exporter']})")
        return 0

    data = args.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in ("calib", "val"):
        np.savez(data / f"{name}.npz", x=nchw[name], y=getattr(splits, name).y)
    from formicary.compile import compile_model

    compiled = compile_model(onnx_path, args.out / "compiled", calib=str(data / "calib.npz"),
                             val=str(data / "val.npz"), seed=args.seed)
    rep = compiled.report
    result["compile"] = {"model_path": str(compiled.model_path), "accuracy": rep["accuracy"],
                         "model_bytes": rep["model_bytes"], "macs": rep["macs"], "sparsity": rep.get("sparsity"),
                         "layout": rep["compile"]["onnx"]["layout"], "wall_seconds": rep["compile"]["wall_seconds"]}
    if args.board != "none":
        from formicary.bench.runner import run_bench

        # The .tflite takes NHWC: the same val digits in that layout (formicary demo's val.npz).
        np.savez(data / "val_nhwc.npz", x=splits.val.x, y=splits.val.y)
        kernels = _kernels_chosen(compiled.model_path, args.kernels, args.out / "codegen")
        bench = run_bench(compiled.model_path, args.board, kernels=args.kernels, data=data / "val_nhwc.npz",
                          warmup=0, profile=True, store=False, out_dir=args.out / "bench")
        result["bench"] = {"board": args.board, "kernels": args.kernels, "bit_exact": bench["bit_exact"],
                           "inputs": bench["inputs"], "accuracy": bench["accuracy"],
                           "instructions_median": bench["latency"]["median"], "unit": bench["latency"]["unit"],
                           "flash_bytes": bench["flash_bytes"], "arena_bytes": bench["arena_bytes"],
                           "layers": [{"op": layer["op"], "kernel": kernels.get(layer["index"]),
                                       "median": layer["median"]} for layer in bench["layers"]]}
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        acc = rep["accuracy"]
        print(f"torch float {result['torch_val_accuracy']:.2%}, onnxruntime float {acc['float']:.2%}, "
              f"int8 TFLM {acc['quantized']:.2%}")
        if "bench" in result:
            b = result["bench"]
            print(f"{b['board']} ({b['kernels']}): bit-exact {b['bit_exact']}, accuracy {b['accuracy']:.2%}, "
                  f"{b['instructions_median']:,} instructions per inference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
