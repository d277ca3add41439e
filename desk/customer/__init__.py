"""The demo customer client (see ``desk.customer_app`` for the entry points).

- ``app``: the App, its factory and command line
- ``screens``: start screen and chat screen
- ``model``: the chat as plain data (frames in, updates out), no Textual
- ``transcript``: a virtualised, CJK-aware transcript widget
- ``dialogs``: rating and end-chat modals
- ``texts``: zh/en UI strings
"""

from .app import CustomerApp, add_arguments, main, make_customer_app, run

__all__ = ["CustomerApp", "add_arguments", "main", "make_customer_app", "run"]
