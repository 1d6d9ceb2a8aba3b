"""SFace 128-d embeddings through OpenCV DNN.

OpenCV 5's new graph engine refuses the stock SFace file through ``FaceRecognizerSF``: the
file lists 29 unused weights as graph inputs, so ``setInput(blob)`` without a name asserts
"empty name can only be used to set input if there is just one input" (peers.md). Reading the
net directly and naming the real input (``data``) works on OpenCV 5 and 4 alike, without
rewriting the model file (whose sha256 we verify).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

INPUT_NAME = "data"
DIM = 128


class SFaceEmbedder:
    def __init__(self, path: Path) -> None:
        self.net = cv2.dnn.readNetFromONNX(str(path))

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        """(112, 112, 3) BGR crop -> (128,) float32, L2-normalised."""
        blob = cv2.dnn.blobFromImage(aligned, 1.0, (112, 112), (0, 0, 0), swapRB=True, crop=False)
        self.net.setInput(blob, INPUT_NAME)
        vec = np.asarray(self.net.forward(), np.float32).reshape(-1)
        if vec.shape[0] != DIM:
            raise RuntimeError(f"SFace returned {vec.shape[0]} values, expected {DIM}")
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec

    def embed_batch(self, aligned: list[np.ndarray]) -> list[np.ndarray]:
        """Several crops in one inference (the net takes a batch: same vectors as one by one,
        checked in tests/edge/faces/test_rush.py); the scheduler batches faces of several
        doors this way."""
        if len(aligned) <= 1:
            return [self.embed(a) for a in aligned]
        blob = cv2.dnn.blobFromImages(aligned, 1.0, (112, 112), (0, 0, 0), swapRB=True,
                                      crop=False)
        self.net.setInput(blob, INPUT_NAME)
        out = np.asarray(self.net.forward(), np.float32).reshape(len(aligned), -1)
        if out.shape[1] != DIM:
            raise RuntimeError(f"SFace returned {out.shape[1]} values, expected {DIM}")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return list((out / np.where(norms > 0, norms, 1.0)).astype(np.float32))
