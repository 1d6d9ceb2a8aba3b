"""Screen display-control drivers (power, brightness): ``type = "rs232" | "sim"``."""
