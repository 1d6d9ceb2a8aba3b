"""A real RTSP server (GStreamer gst-rtsp-server) for camera tests and benchmarks.

Runs under Debian's /usr/bin/python3 (python3-gi is built for it, not for the venv):
    /usr/bin/python3 gst_rtsp_server.py PORT [--file VIDEO] [--size 640x480] [--fps 15]
Serves rtsp://127.0.0.1:PORT/cam: a looped video file, or a moving test pattern. Binds
127.0.0.1 only.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--file")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--fps", type=int, default=15)
    a = ap.parse_args()
    w, h = a.size.split("x")
    caps = f"video/x-raw,width={w},height={h},framerate={a.fps}/1"
    enc = (
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! "
        "rtph264pay name=pay0 pt=96 config-interval=1"
    )
    if a.file:
        # multifilesrc loops the file; decode, rescale, re-encode at a live pace.
        src = (
            f"multifilesrc location={a.file} loop=true ! decodebin ! videoconvert ! "
            f"videoscale ! videorate ! {caps} ! identity sync=true"
        )
    else:
        src = f"videotestsrc is-live=true pattern=ball ! {caps} ! videoconvert"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {src} ! {enc} )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{a.port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
