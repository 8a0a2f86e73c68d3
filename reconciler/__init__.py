"""streamlock: OpenShift image streams in plain Git."""

__version__ = "0.1.0"
