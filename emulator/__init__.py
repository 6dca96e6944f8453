"""skaha-emulator: CANFAR Science Platform sessions on a local Docker engine."""

__version__ = "0.1.0"
