"""The reception kiosk: a walk-in citizen's screen, camera and call, on a Raspberry Pi.

Media is handled by aiortc in the kiosk process (`kiosk.call`, `kiosk.media`); the hub's
call live channel carries the signalling (`kiosk.signalling`).
"""
