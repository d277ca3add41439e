"""The hub side of the phrasebook: phrases and usage in the hub's database,
served to desks and pushed live when they change.

Team phrases are published by supervisors (or imported with the CLI); each
agent owns its personal phrases. A desk asks once (``phrases_get``) and then
receives ``phrase_changed`` for every edit it may see, from any machine.
Edits made with the CLI while the hub runs are noticed by the hub's
maintenance tick (a revision counter in the database) and pushed the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from phrasebook import Phrase, PhraseError, UsageStats, derive_id

from . import protocol as p

if TYPE_CHECKING:
    from .hub import Hub
    from .session import Session

log = logging.getLogger("hub.phrases")


class PhraseService:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.phrases: dict[str, Phrase] = {}
        self.usage = UsageStats()
        self.rev = 0

    async def load(self) -> None:
        store = self.hub.store
        self.rev = await store.phrases_rev()
        self.phrases = {ph.id: ph for ph in await store.load_phrases()}
        self.usage = UsageStats.from_records(await store.load_usage())

    # -- who sees what ----------------------------------------------------------

    @staticmethod
    def may_see(phrase: Phrase, user_id: str) -> bool:
        return phrase.scope == "team" or phrase.owner == user_id

    def visible(self, user_id: str) -> list[Phrase]:
        return [ph for ph in self.phrases.values() if self.may_see(ph, user_id)]

    def _audience(self, phrase: Phrase) -> list[Session]:
        hub = self.hub
        staff = [*hub.agent_sessions.values(), *hub.supervisors]
        return [s for s in staff if self.may_see(phrase, s.principal)]

    # -- frames -------------------------------------------------------------------

    def send_all(self, session: Session) -> None:
        me = session.principal
        usage = [
            (r.phrase_id, r.count, r.score, r.score_at, r.last_used)
            for r in self.usage.to_records()
            if r.agent == me
        ]
        session.send(p.Phrases(phrases=self.visible(me), usage=usage))

    def save(self, session: Session, draft: p.PhraseDraft) -> None:
        me, role = session.principal, session.role
        scope = draft.scope
        if scope == "team" and role != "supervisor":
            session.error("forbidden", "only supervisors publish team phrases", ref="phrase_save")
            return
        owner = None if scope == "team" else me
        phrase_id = draft.id or derive_id(scope, owner, draft.code, draft.lang)
        old = self.phrases.get(phrase_id)
        if draft.id is not None and (old is None or not self._may_edit(old, session)):
            session.error("unknown_phrase", "no such phrase for you", ref="phrase_save")
            return
        try:
            phrase = Phrase(
                id=phrase_id, code=draft.code, title=draft.title, text=draft.text,
                category=draft.category or "个人", tags=tuple(draft.tags), lang=draft.lang,
                scope=scope, owner=owner, updated_at=self.hub.clock(), topic=draft.topic,
            )  # fmt: skip
        except PhraseError as exc:
            session.error("bad_phrase", str(exc), ref="phrase_save")
            return
        clash = next(
            (ph for ph in self.phrases.values()
             if ph.id != phrase.id and ph.scope == scope and ph.owner == owner
             and ph.code == phrase.code and ph.lang == phrase.lang),
            None,
        )  # fmt: skip
        if clash is not None:
            session.error("bad_phrase", f"shortcode {phrase.code!r} is already used by {clash.title!r}",
                          ref="phrase_save")
            return
        self.phrases[phrase.id] = phrase
        self.rev += 1
        fut = self.hub.store.put_phrase(phrase, by=me)
        if scope == "team":
            self.hub.store.audit(me, "phrase_publish", target=phrase.id, detail={"code": phrase.code})

        def done(f: object) -> None:
            session.send(p.Ok(ref="phrase_save"))
            self._push(phrase, deleted=False)

        fut.add_done_callback(lambda f: done(f) if f.exception() is None else None)

    def delete(self, session: Session, phrase_id: str) -> None:
        old = self.phrases.get(phrase_id)
        if old is None or not self._may_edit(old, session):
            session.error("unknown_phrase", "no such phrase for you", ref="phrase_delete")
            return
        del self.phrases[phrase_id]
        self.usage.forget_phrase(phrase_id)
        self.rev += 1
        fut = self.hub.store.delete_phrase(phrase_id)
        if old.scope == "team":
            self.hub.store.audit(session.principal, "phrase_delete", target=phrase_id)

        def done(f: object) -> None:
            session.send(p.Ok(ref="phrase_delete"))
            self._push(old, deleted=True)

        fut.add_done_callback(lambda f: done(f) if f.exception() is None else None)

    def used(self, session: Session, phrase_id: str, conv: str | None) -> None:
        phrase = self.phrases.get(phrase_id)
        if phrase is None or not self.may_see(phrase, session.principal):
            session.error("unknown_phrase", "no such phrase for you", ref="phrase_used")
            return
        now = self.hub.clock()
        self.usage.record(session.principal, phrase_id, now)
        rec = self.usage.record_of(session.principal, phrase_id)
        assert rec is not None
        self.hub.store.put_usage(rec, conv or "", now)

    @staticmethod
    def _may_edit(phrase: Phrase, session: Session) -> bool:
        if phrase.scope == "team":
            return session.role == "supervisor"
        return phrase.owner == session.principal

    def _push(self, phrase: Phrase, deleted: bool) -> None:
        frame = p.PhraseChanged(id=phrase.id, deleted=deleted, phrase=None if deleted else phrase)
        data = p.encode(frame)
        for s in self._audience(phrase):
            s.push(data)

    # -- edits made behind the hub's back (CLI import) ------------------------------

    async def check_external(self) -> int:
        """Reload if another process changed the phrases; push what changed."""
        rev = await self.hub.store.phrases_rev()
        if rev == self.rev:
            return 0
        # Our own pending writes bump the counter too; wait until they land.
        await self.hub.store.barrier()
        rev = await self.hub.store.phrases_rev()
        if rev == self.rev:
            return 0
        fresh = {ph.id: ph for ph in await self.hub.store.load_phrases()}
        changed = 0
        for pid, old in list(self.phrases.items()):
            if pid not in fresh:
                del self.phrases[pid]
                self._push(old, deleted=True)
                changed += 1
        for pid, ph in fresh.items():
            if self.phrases.get(pid) != ph:
                self.phrases[pid] = ph
                self._push(ph, deleted=False)
                changed += 1
        self.rev = rev
        if changed:
            log.info("phrasebook: %d changes picked up from the database", changed)
        return changed
