"""Door drivers (relay boards): ``type = "modbus" | "lcus" | "sim"``."""
