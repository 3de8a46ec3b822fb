"""A small site showing the session engines and flash messages at work."""
