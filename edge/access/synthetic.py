"""Door-camera frames made from a still photo: for the demo, the tests and bench/access.py.

We have no video of people offline, so a "person at the door" is a registry test photo placed
in a 640x480 hallway frame, and a live head is that frame with the nose region displaced
against eyes and mouth, frame by frame (a non-rigid change that a flat photo cannot make).
The functions take the face the caller found (its bbox and landmarks), so the detector stays
on the face pipeline's own thread.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.faces.types import Face

SIZE = (640, 480)
BACKGROUND = 90  # grey hallway

# A turn that never repeats with a short period, so a door that samples every n-th frame
# still sees the head move (a periodic sequence can alias to a still picture).
TURN = tuple(round(0.9 * float(np.sin(i * 2.4)), 3) for i in range(24))


def hallway(size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.full((size[1], size[0], 3), BACKGROUND, np.uint8)


def door_frame(image: np.ndarray, face: Face | None, face_px: float = 150,
               size: tuple[int, int] = SIZE, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A ``size`` frame (640x480) with the photo's face ~face_px wide in the middle
    (moved by ``shift`` pixels)."""
    return _place(image, face, face_px, size, shift)[0]


def _place(image: np.ndarray, face: Face | None, face_px: float, size: tuple[int, int],
           shift: tuple[int, int]) -> tuple[np.ndarray, Face | None]:
    box = face.bbox if face is not None else (0, 0, image.shape[1], 1)
    scale = face_px / max(box[2], 1)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cx, cy = (box[0] + box[2] / 2) * scale, (box[1] + box[3] / 2) * scale
    frame = hallway(size)
    ox, oy = int(size[0] / 2 - cx) + shift[0], int(size[1] / 2 - cy) + shift[1]
    x0, y0 = max(0, ox), max(0, oy)
    x1, y1 = min(size[0], ox + small.shape[1]), min(size[1], oy + small.shape[0])
    frame[y0:y1, x0:x1] = small[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    if face is None:
        return frame, None
    off = np.array([ox, oy], np.float32)
    placed = Face(bbox=(box[0] * scale + ox, box[1] * scale + oy, box[2] * scale,
                        box[3] * scale),
                  landmarks=(face.landmarks * scale + off).astype(np.float32), score=face.score)
    return frame, placed


def approach(image: np.ndarray, face: Face, frames: int = 30, size: tuple[int, int] = (1280, 720),
             face_px: tuple[float, float] = (190.0, 240.0)) -> list[np.ndarray]:
    """A person walking up to a door camera (bench/rush.py, the rush-hour tests): the face
    grows from face_px[0] to face_px[1] wide while it drifts sideways and the head turns (the
    live, non-rigid motion of :func:`head_turn`)."""
    out = []
    for i in range(frames):
        a = i / max(frames - 1, 1)
        px = face_px[0] + (face_px[1] - face_px[0]) * a
        shift = (int(60 * (0.5 - a)), int(10 * np.sin(3 * a)))
        frame, placed = _place(image, face, px, size, shift)
        assert placed is not None
        out.append(head_turn(frame, placed, (TURN[i % len(TURN)],))[0])
    return out


def head_turn(frame: np.ndarray, face: Face, amounts: tuple = TURN) -> list[np.ndarray]:
    """Frames of a head turning (the face as found in ``frame``). Only the region around
    the nose moves (the warp is computed there: cheap on a 1280x720 frame too)."""
    nose, eye = face.landmarks[2], face.eye_distance
    h, w = frame.shape[:2]
    r = int(2 * eye) + 2
    x0, y0 = max(0, int(nose[0]) - r), max(0, int(nose[1]) - r)
    x1, y1 = min(w, int(nose[0]) + r), min(h, int(nose[1]) + r)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    g = np.exp(-(((xx - nose[0]) ** 2 + (yy - nose[1]) ** 2) / (2 * (0.35 * eye) ** 2)))
    out = []
    for a in amounts:
        mapx = (xx - a * eye * g).astype(np.float32)
        f = frame.copy()
        f[y0:y1, x0:x1] = cv2.remap(frame, mapx, yy, cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT)
        out.append(f)
    return out


def look_alike(stranger: np.ndarray, face_s: Face, resident: np.ndarray, face_r: Face,
               share: float = 0.4) -> np.ndarray:
    """A stranger who resembles a resident: the resident's face (door frame ``resident``, its
    face ``face_r``) warped onto the stranger's landmarks and blended in by ``share``."""
    m, _ = cv2.estimateAffinePartial2D(face_r.landmarks, face_s.landmarks)
    h, w = stranger.shape[:2]
    warped = cv2.warpAffine(resident, m, (w, h), borderValue=(BACKGROUND,) * 3)
    return cv2.addWeighted(warped, share, stranger, 1 - share, 0)


def infrared(frame: np.ndarray) -> np.ndarray:
    """What an IR sensor beside the colour one sees of a real person: a grey image with skin
    brighter and flatter than in colour (near-IR passes into skin), same geometry."""
    b, g, r = cv2.split(frame.astype(np.float32))
    ir = 0.6 * r + 0.3 * g + 0.1 * b
    return cv2.equalizeHist(np.clip(ir, 0, 255).astype(np.uint8))


def infrared_of_screen(frame: np.ndarray, face: Face) -> np.ndarray:
    """What the IR sensor sees of a phone or tablet held up with a face on it: the screen's
    light has no near-IR, so a dark slab where the face is, the hallway around it."""
    ir = infrared(frame)
    x, y, w, h = (int(v) for v in face.bbox)
    cv2.rectangle(ir, (x - w // 3, y - h // 2), (x + w + w // 3, y + h + h // 2), 18, -1)
    return ir
