"""Face detectors behind one small interface: YuNet (OpenCV) and BlazeFace (ai-edge-litert).

Both return :class:`Face` objects with five landmarks in the SFace order (image-left eye,
image-right eye, nose, image-left mouth corner, image-right mouth corner), in the coordinates
of the frame given. Large frames are scaled down to ``max_side`` first: a door camera's face
fills a good part of the frame, and detection cost grows with pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.faces.types import Face


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]: ...


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(
            image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
    return image, scale


def _largest_first(faces: list[Face]) -> list[Face]:
    return sorted(faces, key=lambda f: f.bbox[2] * f.bbox[3], reverse=True)


class YuNetDetector:
    def __init__(self, path: Path, *, score: float = 0.7, max_side: int = 640) -> None:
        self.max_side = max_side
        self.model = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score, 0.3, 100)
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[Face]:
        small, scale = _downscale(image, self.max_side)
        size = (small.shape[1], small.shape[0])
        if size != self._size:  # re-planning the net is only needed when the size changes
            self.model.setInputSize(size)
            self._size = size
        _, rows = self.model.detect(small)
        if rows is None:
            return []
        faces = []
        for r in rows:
            box = tuple(float(v) / scale for v in r[:4])
            marks = (r[4:14].reshape(5, 2) / scale).astype(np.float32)
            faces.append(Face(bbox=box, landmarks=marks, score=float(r[14])))  # type: ignore[arg-type]
        return _largest_first(faces)


# BlazeFace anchor layouts (MediaPipe SsdAnchorsCalculator options of each model).
_BLAZE = {
    "short": {
        "file": "face_detection_short_range.tflite",
        "size": 128,
        "layers": [(8, 2), (16, 6)],
    },
    "full": {"file": "face_detection_full_range.tflite", "size": 192, "layers": [(4, 1)]},
}
# Mouth corners from the mouth centre: half the template's mouth width over its eye distance.
_MOUTH_HALF = 29.18 / 35.24 / 2


def _anchors(size: int, layers: list[tuple[int, int]]) -> np.ndarray:
    out = []
    for stride, per_cell in layers:
        cells = size // stride
        for y in range(cells):
            for x in range(cells):
                out.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
    return np.array(out, np.float32)


class BlazeFaceDetector:
    """MediaPipe BlazeFace on ai-edge-litert (the maintained tflite runtime; numpy 2)."""

    def __init__(self, model_dir: Path, *, variant: str = "short", score: float = 0.6) -> None:
        from ai_edge_litert.interpreter import Interpreter

        spec = _BLAZE[variant]
        self.size = int(spec["size"])  # type: ignore[arg-type]
        self.score = score
        self.interp = Interpreter(model_path=str(model_dir / str(spec["file"])), num_threads=2)
        self.interp.allocate_tensors()
        self.anchors = _anchors(self.size, spec["layers"])  # type: ignore[arg-type]
        self.input = self.interp.get_input_details()[0]["index"]
        outs = sorted(self.interp.get_output_details(), key=lambda d: d["shape"][-1])
        self.out_scores, self.out_boxes = outs[0]["index"], outs[1]["index"]
        if len(self.anchors) != outs[1]["shape"][1]:
            raise RuntimeError(f"BlazeFace {variant}: anchor count does not match the model")

    def detect(self, image: np.ndarray) -> list[Face]:
        s = self.size
        h, w = image.shape[:2]
        scale = s / max(h, w)
        nw, nh = round(w * scale), round(h * scale)
        ox, oy = (s - nw) // 2, (s - nh) // 2
        canvas = np.zeros((s, s, 3), np.uint8)
        canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(
            image, (nw, nh), interpolation=cv2.INTER_AREA
        )
        x = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
        self.interp.set_tensor(self.input, x[None])
        self.interp.invoke()
        raw = self.interp.get_tensor(self.out_boxes)[0]
        logits = np.clip(self.interp.get_tensor(self.out_scores)[0, :, 0], -80, 80)
        scores = 1 / (1 + np.exp(-logits))
        keep = np.nonzero(scores >= self.score)[0]
        if len(keep) == 0:
            return []
        a = self.anchors[keep]
        r = raw[keep] / s
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        bw, bh = r[:, 2], r[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1) * s
        kps = (r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]) * s
        # Back from the letterboxed square to frame pixels.
        boxes[:, 0] = (boxes[:, 0] - ox) / scale
        boxes[:, 1] = (boxes[:, 1] - oy) / scale
        boxes[:, 2:] /= scale
        kps[..., 0] = (kps[..., 0] - ox) / scale
        kps[..., 1] = (kps[..., 1] - oy) / scale
        idx = cv2.dnn.NMSBoxes(boxes.tolist(), scores[keep].tolist(), self.score, 0.3)
        faces = []
        for i in np.asarray(idx).reshape(-1):
            k = kps[i]
            eyes = sorted([k[0], k[1]], key=lambda p: p[0])
            v = eyes[1] - eyes[0]
            mouth = k[3]
            marks = np.array(
                [eyes[0], eyes[1], k[2], mouth - _MOUTH_HALF * v, mouth + _MOUTH_HALF * v],
                np.float32,
            )
            box = tuple(float(b) for b in boxes[i])
            faces.append(Face(bbox=box, landmarks=marks, score=float(scores[keep][i])))  # type: ignore[arg-type]
        return _largest_first(faces)
