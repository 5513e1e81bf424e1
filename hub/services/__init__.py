"""The service layer: every state change of the hub goes through here."""
