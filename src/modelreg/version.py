"""mreg's version (base layer: importable by any module without importing the package's facade)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
