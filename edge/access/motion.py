"""The door's motion gate is the camera drivers' (drivers/cameras/motion.py): the camera's
reader thread runs it, so an idle door's event loop wakes only on motion."""

from drivers.cameras.motion import PIXEL_DELTA, SIZE, MotionGate, _blur3

__all__ = ["PIXEL_DELTA", "SIZE", "MotionGate", "_blur3"]
