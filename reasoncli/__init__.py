"""reason: spend test-time compute on a local GGUF model, in parallel or in series."""

__version__ = "0.1.0"
