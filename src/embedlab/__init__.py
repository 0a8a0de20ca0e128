"""embedlab: working, measured tools for embedding-heavy models."""

from embedlab.errors import UserError

__all__ = ["UserError", "__version__"]
__version__ = "0.1.0"
