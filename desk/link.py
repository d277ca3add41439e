"""The hub link of a Textual app (agent desk, supervisor monitor): log in,
run HubClient in a worker, and post its frames and status as messages."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.message import Message

from desk.client import HubClient
from server import protocol as p


class HubFrame(Message):
    """A frame from the hub, delivered in order by the connection worker."""

    def __init__(self, frame: Any) -> None:
        super().__init__()
        self.frame = frame


class LinkStatus(Message):
    """The hub link changed state (connecting, online, offline, closed)."""

    def __init__(self, status: str) -> None:
        super().__init__()
        self.status = status


class HubLinkMixin:
    """For an App with url, user, password, config (saved_token), tr and client."""

    def open_link_or_login(self) -> None:
        if self.user and (self.password or self.config.saved_token(self.user)):  # type: ignore[attr-defined]
            self.start_link()
        else:
            self.ask_login()

    def ask_login(self, error: str = "") -> None:
        from desk.agent.screens import LoginScreen

        def done(result: tuple[str, str] | None) -> None:
            if result:
                self.user, self.password = result
                self.start_link()

        self.push_screen(LoginScreen(self.tr, self.user, error), done)  # type: ignore[attr-defined]

    def start_link(self) -> None:
        token = "" if self.password else self.config.saved_token(self.user)  # type: ignore[attr-defined]
        login = p.Login(user=self.user, password=self.password or None, token=token or None)
        self.client = HubClient(self.url, lambda f: self.post_message(HubFrame(f)), login=login,  # type: ignore[attr-defined]
                                on_status=lambda s: self.post_message(LinkStatus(s)))  # type: ignore[attr-defined]  # fmt: skip
        self.run_link(self.client)

    @work(exclusive=True, group="hub", exit_on_error=False)
    async def run_link(self, client: HubClient) -> None:
        await client.run()

    user: str
    password: str
    client: HubClient | None
