"""coinbt: crypto backtests as durable, auditable tasks."""

__version__ = "0.1.0"
__all__ = ("__version__",)
