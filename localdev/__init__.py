"""The local stack: stand-ins for Google services, and the runner that starts them."""
