"""The web service: the FastAPI app (``create_app``), its JSON API, pages and static assets."""

from evoforge.web.app import create_app, is_loopback

__all__ = ["create_app", "is_loopback"]
