"""The demo customer client: the app, its factory and its command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from textual import on
from textual.app import App
from textual.binding import Binding

from desk.i18n import Tr, detect_lang

from .screens import FLAGS, ChatScreen, StartScreen
from .texts import TEXTS, localize_bindings

DEFAULT_URL = "ws://127.0.0.1:8765/"


class CustomerApp(App[None]):
    """A bank customer's chat window: the bot first, a person on request."""

    CSS_PATH = Path(__file__).resolve().parent.parent / "customer.tcss"
    # A customer has no use for the developer palette (themes, screenshots).
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "key_quit", id="customer.quit", priority=True)]

    def __init__(
        self,
        url: str = DEFAULT_URL,
        name: str | None = None,
        flags: list[str] | None = None,
        lang: str = "zh",
        ui_lang: str | None = None,
        *,
        connect: bool = True,
    ) -> None:
        super().__init__()
        self.url = url
        self.customer_name = (name or "").strip()
        self.flags = list(flags or [])
        self.lang = lang if lang in ("zh", "en") else "zh"
        self.tr = Tr(TEXTS, detect_lang(ui_lang))
        self.connect = connect  # False: no network; frames are fed by hand (snapshots)
        localize_bindings(self, self.tr)

    @property
    def chat(self) -> ChatScreen | None:
        """The chat on screen, if one is (below any dialog)."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, ChatScreen):
                return screen
        return None

    def on_mount(self) -> None:
        self.title = self.tr("app_title")
        if self.customer_name:
            self.start_chat(self.customer_name, self.flags)
        else:
            self.push_screen(StartScreen(self.tr, self.flags), self._started)

    def _started(self, result: tuple[str, list[str]] | None) -> None:
        if result is not None:
            self.start_chat(*result)

    def start_chat(self, name: str, flags: list[str]) -> None:
        """Open a new conversation (replacing a finished one)."""
        self.customer_name, self.flags = name, list(flags)
        screen = ChatScreen(
            self.tr, name, self.flags, self.lang, self.url if self.connect else None
        )
        if isinstance(self.screen, ChatScreen):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    @on(ChatScreen.NewChatRequested)
    def _new_chat(self) -> None:
        self.start_chat(self.customer_name, self.flags)


def make_customer_app(
    url: str,
    name: str | None = None,
    flags: list[str] | None = None,
    lang: str = "zh",
    ui_lang: str | None = None,
) -> App[None]:
    """The app as `desk customer` runs it (the tests use the same factory)."""
    return CustomerApp(url, name=name, flags=flags, lang=lang, ui_lang=ui_lang)


def _flags(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `desk customer`."""
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"the hub's websocket URL (default {DEFAULT_URL})"
    )
    parser.add_argument("--name", help="the customer's name (skips the start screen)")
    parser.add_argument("--flags", type=_flags, default=[],
                        help=f"comma-separated demo flags, e.g. elderly,vip (known: {','.join(FLAGS)})")  # fmt: skip
    parser.add_argument("--lang", choices=["zh", "en"], default=None,
                        help="the chat's language: the bot's and the hub's notices "
                             "(default: --ui-lang if given, else zh)")  # fmt: skip
    parser.add_argument("--ui-lang", choices=["zh", "en"], default=None,
                        help="the app's own language (default: $DESK_LANG, then the locale)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run the app until the customer quits."""
    # A customer who chose an English screen wants English notices too.
    lang = args.lang or args.ui_lang or "zh"
    app = make_customer_app(
        args.url, name=args.name, flags=args.flags, lang=lang, ui_lang=args.ui_lang
    )
    app.run()
    return app.return_code or 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="desk customer", description="Demo bank customer chat client."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
