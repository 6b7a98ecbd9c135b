"""`tessera chat`: the Textual terminal chat over a `ChatBackend`.

Example:
    >>> from ui.tui import TesseraApp
    >>> TesseraApp(backend, user="ada", session="notes").run()  # doctest: +SKIP
"""

from ui.tui.app import TesseraApp

__all__ = ["TesseraApp"]
