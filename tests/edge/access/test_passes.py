"""Pass QR codes: every one the box prints can be read back at a door camera."""

from __future__ import annotations

import secrets

import cv2
import numpy as np

from edge.access import passes


def test_every_pass_qr_reads_back_from_a_door_frame_and_its_png() -> None:
    # The classic cv2.QRCodeDetector missed about 4 % of these (a visitor left outside).
    key = secrets.token_bytes(32)
    reader = passes.QrReader()
    missed = []
    for _ in range(200):
        text = passes.qr_text(key, f"vp-{secrets.token_hex(8)}")
        png = cv2.imdecode(np.frombuffer(passes.qr_png(text), np.uint8), cv2.IMREAD_COLOR)
        if reader.read(passes.qr_frame(text)) != text or reader.read(png) != text:
            missed.append(text)
    assert missed == []
    assert passes.verify_qr(key, text) is not None


def test_no_qr_and_a_forged_qr() -> None:
    reader = passes.QrReader()
    assert reader.read(np.full((480, 640, 3), 110, np.uint8)) is None
    key = secrets.token_bytes(32)
    forged = passes.qr_text(secrets.token_bytes(32), "vp-1")
    assert reader.read(passes.qr_frame(forged)) == forged
    assert passes.verify_qr(key, forged) is None
    # a QR code can carry any text: one outside ASCII is refused, not an exception in the
    # camera loop or a 500 at the door's QR route
    assert passes.verify_qr(key, forged[:-2] + "签名") is None
    assert passes.verify_qr(key, "QLP1.vp-1.é") is None
