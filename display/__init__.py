"""The empfang door display: room status from MQTT on HDMI, e-paper and LEDs."""
