"""The Gradio web chat (`tessera web`): `serve(backend)` starts it, `build_app(backend)` builds the page."""

from ui.web.app import CSS, build_app, serve
from ui.web.uploads import load_auth

__all__ = ["CSS", "build_app", "load_auth", "serve"]
