"""Modal dialogs that dismiss with a result: the rating and the end-chat check."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet

from desk.i18n import Tr
from server import protocol as p

from .texts import localize_bindings

SCORES: tuple[p.Score, ...] = ("very_satisfied", "satisfied", "dissatisfied")


@dataclass(frozen=True)
class Rating:
    score: p.Score
    comment: str = ""


class RatingScreen(ModalScreen[Rating | None]):
    """Three levels and an optional comment; Esc means "not now"."""

    DEFAULT_CSS = """
    RatingScreen { align: center middle; }
    RatingScreen > Vertical {
        width: 56; max-width: 100%; height: auto;
        border: thick $primary; background: $panel; padding: 1 2;
    }
    RatingScreen #rate-title { text-style: bold; width: 100%; content-align: center middle; }
    RatingScreen RadioSet { width: 100%; margin: 1 0; }
    RatingScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    RatingScreen Button { margin-left: 1; }
    """

    BINDINGS = [Binding("escape", "skip", "key_cancel", id="rating.skip")]

    def __init__(self, tr: Tr) -> None:
        super().__init__()
        self.tr = tr
        localize_bindings(self, tr)

    def compose(self) -> ComposeResult:
        tr = self.tr
        with Vertical():
            yield Label(tr("rate_title"), id="rate-title")
            with RadioSet(id="rate-score"):
                for i, score in enumerate(SCORES):
                    yield RadioButton(tr(f"rate_{score}"), value=i == 0, id=f"rate-{score}")
            yield Input(
                placeholder=tr("rate_comment"), max_length=p.MAX_NOTE_CHARS, id="rate-comment"
            )
            with Horizontal():
                yield Button(tr("rate_skip"), id="rate-skip")
                yield Button(tr("rate_submit"), variant="primary", id="rate-submit")

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()

    def _result(self) -> Rating:
        pressed = self.query_one(RadioSet).pressed_index
        score = SCORES[pressed] if 0 <= pressed < len(SCORES) else SCORES[0]
        return Rating(score, self.query_one("#rate-comment", Input).value.strip())

    @on(Button.Pressed, "#rate-submit")
    @on(Input.Submitted, "#rate-comment")
    def _submit(self) -> None:
        self.dismiss(self._result())

    @on(Button.Pressed, "#rate-skip")
    def action_skip(self) -> None:
        self.dismiss(None)


class ConfirmEnd(ModalScreen[bool]):
    """Ending is final for this chat, so ask once."""

    DEFAULT_CSS = """
    ConfirmEnd { align: center middle; }
    ConfirmEnd > Vertical {
        width: 44; max-width: 100%; height: auto;
        border: thick $warning; background: $panel; padding: 1 2;
    }
    ConfirmEnd Label { width: 100%; content-align: center middle; }
    ConfirmEnd Horizontal { height: auto; align-horizontal: center; margin-top: 1; }
    ConfirmEnd Button { margin: 0 1; }
    """

    BINDINGS = [Binding("escape", "keep", "key_cancel", id="end.cancel")]

    def __init__(self, tr: Tr) -> None:
        super().__init__()
        self.tr = tr
        localize_bindings(self, tr)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.tr("end_question"))
            with Horizontal():
                yield Button(self.tr("end_no"), id="end-no")
                yield Button(self.tr("end_yes"), variant="error", id="end-yes")

    def on_mount(self) -> None:
        self.query_one("#end-no", Button).focus()

    @on(Button.Pressed, "#end-yes")
    def _end(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#end-no")
    def action_keep(self) -> None:
        self.dismiss(False)
