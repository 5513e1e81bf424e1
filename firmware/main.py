# empfang status light: MicroPython runs this file after boot.py.
# To keep the app from starting (e.g. to update files), hold the knock button while the
# board resets, or remove this file with mpremote (see README.md).
from empfang_light import device

device.main("config.json")
