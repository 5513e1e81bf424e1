"""What the kiosk and the door display share: enrollment, settings reading and the device's
broker link (may import `protocol`, never `hub`, `kiosk` or `display`)."""
