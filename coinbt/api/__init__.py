"""The HTTP API: a thin Starlette layer over :class:`coinbt.runtime.System`."""

from coinbt.api.app import create_app

__all__ = ("create_app",)
