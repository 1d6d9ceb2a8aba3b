"""Camera drivers: ``type = "rtsp" | "onvif" | "usb" | "file" | "rgbir"``."""
