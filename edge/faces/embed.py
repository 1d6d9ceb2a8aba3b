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


def fuse_flip(plain: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Flip test-time augmentation: the normalised sum of the (unit) embeddings of a crop and
    of its horizontal mirror. Works on (128,) vectors and on (n, 128) rows alike."""
    s = np.asarray(plain, np.float32) + np.asarray(mirror, np.float32)
    n = np.linalg.norm(s, axis=-1, keepdims=True)
    return (s / np.where(n > 0, n, 1.0)).astype(np.float32)


class SFaceEmbedder:
    """``flip``: every embedding is :func:`fuse_flip` of the crop and its mirror (two faces
    in one forward; docs/faces.md "Flip test-time augmentation")."""

    def __init__(self, path: Path, flip: bool = False) -> None:
        self.net = cv2.dnn.readNetFromONNX(str(path))
        self.flip = flip

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        """(112, 112, 3) BGR crop -> (128,) float32, L2-normalised."""
        if self.flip:
            return self.embed_batch([aligned])[0]
        return self.plain(aligned)

    def pair(self, aligned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The crop's own embedding and its mirror's, each by itself (bench/openset.py keeps
        both, so plain and flip scoring are compared on the same frames)."""
        return self.plain(aligned), self.plain(cv2.flip(aligned, 1))

    def plain(self, aligned: np.ndarray) -> np.ndarray:
        """One crop, one forward, no flip."""
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
        doors this way. With ``flip`` each crop's mirror rides in the same batch."""
        if self.flip and aligned:
            units = self._units([*aligned, *(cv2.flip(a, 1) for a in aligned)])
            return list(fuse_flip(units[: len(aligned)], units[len(aligned):]))
        if len(aligned) <= 1:
            return [self.plain(a) for a in aligned]
        return list(self._units(aligned))

    def _units(self, aligned: list[np.ndarray]) -> np.ndarray:
        blob = cv2.dnn.blobFromImages(aligned, 1.0, (112, 112), (0, 0, 0), swapRB=True,
                                      crop=False)
        self.net.setInput(blob, INPUT_NAME)
        out = np.asarray(self.net.forward(), np.float32).reshape(len(aligned), -1)
        if out.shape[1] != DIM:
            raise RuntimeError(f"SFace returned {out.shape[1]} values, expected {DIM}")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)
