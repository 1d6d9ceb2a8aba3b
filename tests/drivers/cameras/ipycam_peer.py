"""An ONVIF camera (ipycam) fed with a moving test pattern or a video file, for tests.

    python ipycam_peer.py ONVIF_PORT RTSP_PORT [--user U --password P] [--video FILE]

ipycam binds all interfaces (its WS-Discovery responder too); we tell it its address is
127.0.0.1 so every URI it hands out stays on loopback.
"""

import argparse
import time

import cv2
import numpy as np
from ipycam import CameraConfig, IPCamera


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("onvif_port", type=int)
    ap.add_argument("rtsp_port", type=int)
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    ap.add_argument("--video")
    ap.add_argument("--fps", type=int, default=15)
    a = ap.parse_args()
    cfg = CameraConfig(
        local_ip="127.0.0.1", onvif_port=a.onvif_port, rtsp_port=a.rtsp_port,
        main_width=640, main_height=480, main_fps=a.fps, sub_width=320, sub_height=240,
        sub_fps=a.fps, show_timestamp=False, username=a.user, password=a.password,
        name="QiluTestCam", manufacturer="QiluTest", model="VC-1",
    )
    cam = IPCamera(cfg)
    cam.start()
    print("ready", flush=True)
    video = cv2.VideoCapture(a.video) if a.video else None
    i = 0
    while True:
        frame = None
        if video is not None:
            ok, frame = video.read()
            if not ok:
                video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = video.read()
            frame = cv2.resize(frame, (640, 480)) if ok else None
        if frame is None:
            frame = np.full((480, 640, 3), 50, np.uint8)
            x = (i * 8) % 600
            frame[200:240, x:x + 40] = (0, 200, 255)
        cam.stream(frame)
        i += 1
        time.sleep(1 / a.fps)


if __name__ == "__main__":
    main()
