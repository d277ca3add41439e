"""The wire protocol: one module that the hub and every desk import.

Every frame is a JSON object in a websocket text frame with a ``type`` tag.
``ClientFrame`` is everything a client may send, ``HubFrame`` everything the
hub sends. msgspec validates on decode (types, required fields, lengths) and
names the offending field, so the hub can answer bad input precisely.
docs/PROTOCOL.md documents each frame with an example.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from phrasebook import Phrase

PROTOCOL_VERSION = 1

# Limits the hub enforces; clients can read them from `welcome`/`login_ok`.
MAX_FRAME_BYTES = 64 * 1024
MAX_TEXT_CHARS = 4000
MAX_NAME_CHARS = 64
MAX_NOTE_CHARS = 2000
MAX_ID_CHARS = 64

Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS)]
Text = Annotated[str, Meta(min_length=1)]  # length checked by the hub: clearer error
NoteText = Annotated[str, Meta(max_length=MAX_NOTE_CHARS)]
MAX_INT = 2**53  # bounded: a number past SQLite's range must be a bad frame, not a crash
Seq = Annotated[int, Meta(ge=0, le=MAX_INT)]
Flag = Annotated[str, Meta(min_length=1, max_length=24)]

Score = Literal["very_satisfied", "satisfied", "dissatisfied"]
Status = Literal["online", "away", "offline"]
Role = Literal["customer", "agent", "supervisor"]
ConvStateName = Literal["bot", "queued", "assigned", "closed"]


class Frame(Struct, tag_field="type", forbid_unknown_fields=True, omit_defaults=True):
    """Base of every frame; subclasses set their wire ``type`` with ``tag=``."""


# --------------------------------------------------------------------------
# Client -> hub
# --------------------------------------------------------------------------


class Hello(Frame, tag="hello"):
    """A customer starts a chat, or resumes one with its token."""

    name: Name
    channel: Annotated[str, Meta(max_length=32)] = "web"
    flags: Annotated[list[Flag], Meta(max_length=8)] = []
    lang: Literal["zh", "en"] = "zh"
    resume_token: Annotated[str, Meta(max_length=128)] | None = None
    last_seq: Seq = 0
    last_epoch: Seq = 0  # the ``epoch`` of the message at ``last_seq``


class Login(Frame, tag="login"):
    """An agent or supervisor logs in with a password or a saved token."""

    user: Id
    password: Annotated[str, Meta(max_length=256)] | None = None
    token: Annotated[str, Meta(max_length=128)] | None = None
    # Conversation id -> last sequence number this client holds.
    cursors: Annotated[dict[Id, Seq], Meta(max_length=32)] = {}
    # Conversation id -> the ``epoch`` of the message at that cursor.
    epochs: Annotated[dict[Id, Seq], Meta(max_length=32)] = {}


class Logout(Frame, tag="logout"):
    """Revoke this session's token and close every socket that used it."""


class Send(Frame, tag="send"):
    """A chat message. ``msg_id`` is the sender's own id, used to dedupe resends."""

    conv: Id
    msg_id: Id
    text: Text


class Typing(Frame, tag="typing"):
    conv: Id
    on: bool = True


class RequestHuman(Frame, tag="request_human"):
    """The customer asks for a person."""

    conv: Id


class End(Frame, tag="end"):
    """The customer ends the chat."""

    conv: Id


class Rate(Frame, tag="rate"):
    conv: Id
    score: Score
    comment: NoteText = ""


class SetStatus(Frame, tag="set_status"):
    status: Status


class Note(Frame, tag="note"):
    """An internal note: staff see it, the customer never does."""

    conv: Id
    msg_id: Id
    text: Text


class Transfer(Frame, tag="transfer"):
    """Transfer to a skill group or to a named agent (exactly one of them)."""

    conv: Id
    group: Id | None = None
    agent: Id | None = None
    note: NoteText = ""


class Close(Frame, tag="close"):
    """The agent closes a chat; the wrap-up may follow later with ``wrapup``."""

    conv: Id
    wrapup: Id | None = None
    note: NoteText = ""


class Wrapup(Frame, tag="wrapup"):
    conv: Id
    code: Id
    note: NoteText = ""


class RaiseHand(Frame, tag="raise_hand"):
    """An agent asks a supervisor for help (optionally about one chat)."""

    on: bool = True
    conv: Id | None = None
    note: NoteText = ""


class PhraseDraft(Struct, forbid_unknown_fields=True):
    """A phrase as a desk edits it; the hub sets scope, owner and time."""

    code: Annotated[str, Meta(min_length=1, max_length=32)]
    title: Annotated[str, Meta(min_length=1, max_length=80)]
    text: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_CHARS)]
    category: Annotated[str, Meta(max_length=40)] = "个人"
    tags: Annotated[list[Annotated[str, Meta(max_length=24)]], Meta(max_length=16)] = []
    lang: Literal["zh", "en"] = "zh"
    topic: Id | None = None
    id: Id | None = None  # given when editing an existing phrase
    scope: Literal["team", "personal"] = "personal"  # team: supervisors only


class PhrasesGet(Frame, tag="phrases_get"):
    """Ask for every phrase this user may see, with its own usage."""


class PhraseSave(Frame, tag="phrase_save"):
    phrase: PhraseDraft


class PhraseDelete(Frame, tag="phrase_delete"):
    id: Id


class PhraseUsed(Frame, tag="phrase_used"):
    """A phrase went into a sent reply (ranks it up for this agent)."""

    id: Id
    conv: Id | None = None


class Reveal(Frame, tag="reveal"):
    """An agent unmasks the ID/phone numbers of a chat on screen (audited)."""

    conv: Id
    seq: Seq = 0  # 0: the whole chat


class DirectoryGet(Frame, tag="directory_get"):
    """Who and where a chat can be transferred to."""


class Watch(Frame, tag="watch"):
    """A supervisor watches a chat read-only: its history, then live items."""

    conv: Id
    on: bool = True


class Whisper(Frame, tag="whisper"):
    """A supervisor's note to the chat's agent: the customer never sees it."""

    conv: Id
    msg_id: Id
    text: Text


class Reassign(Frame, tag="reassign"):
    """A supervisor moves a chat (assigned or waiting) to a named agent."""

    conv: Id
    agent: Id
    # Only if it still waits: a chat the queue gave someone meanwhile is not
    # taken from them (the supervisor picked it from a list of waiting chats).
    waiting_only: bool = False


class AgentSet(Frame, tag="agent_set"):
    """A supervisor changes an agent's status or max chats."""

    agent: Id
    status: Status | None = None
    max_chats: Annotated[int, Meta(ge=0, le=5)] | None = None


class AuditGet(Frame, tag="audit_get"):
    """The newest audit entries (before ``before_id`` when paging back)."""

    limit: Annotated[int, Meta(ge=1, le=500)] = 100
    before_id: Seq = 0
    action: Annotated[str, Meta(max_length=40)] = ""


class PhraseStatsGet(Frame, tag="phrase_stats_get"):
    """The phrases used most today and overall."""

    limit: Annotated[int, Meta(ge=1, le=200)] = 20


class KbReload(Frame, tag="kb_reload"):
    """A supervisor reloads the bot's knowledge base now."""


class BotMissesGet(Frame, tag="bot_misses_get"):
    """The questions the bot could not answer, most asked first."""

    limit: Annotated[int, Meta(ge=1, le=500)] = 50


ClientFrame = (
    Hello
    | Login
    | Logout
    | Send
    | Typing
    | RequestHuman
    | End
    | Rate
    | SetStatus
    | Note
    | Transfer
    | Close
    | Wrapup
    | RaiseHand
    | PhrasesGet
    | PhraseSave
    | PhraseDelete
    | PhraseUsed
    | KbReload
    | BotMissesGet
    | Reveal
    | DirectoryGet
    | Watch
    | Whisper
    | Reassign
    | AgentSet
    | AuditGet
    | PhraseStatsGet
)


# --------------------------------------------------------------------------
# Hub -> client
# --------------------------------------------------------------------------


class Welcome(Frame, tag="welcome"):
    """Answer to ``hello``: the conversation and the token to resume it."""

    conv: str
    resume_token: str
    resumed: bool
    state: ConvStateName
    last_seq: int
    protocol: int = PROTOCOL_VERSION
    max_text: int = MAX_TEXT_CHARS


class LoginOk(Frame, tag="login_ok"):
    user: str
    role: Role
    name: str
    token: str
    session: str
    status: Status = "offline"
    max_chats: int = 0
    groups: list[str] = []
    protocol: int = PROTOCOL_VERSION
    max_text: int = MAX_TEXT_CHARS


class Ack(Frame, tag="ack"):
    """The message is durably stored and has sequence number ``seq``."""

    conv: str
    msg_id: str
    seq: int
    duplicate: bool = False
    epoch: int = 0


class Msg(Frame, tag="msg"):
    """One item of a conversation, in sequence order.

    ``kind``: text (customer or agent), bot, system, note (staff only).
    """

    conv: str
    seq: int
    kind: Literal["text", "bot", "system", "note"]
    sender: Literal["customer", "agent", "bot", "system", "supervisor"]
    text: str
    ts: float
    msg_id: str = ""
    sender_id: str = ""
    sender_name: str = ""
    # Which run of the hub numbered it: a cursor is (seq, epoch), see Hello.
    epoch: int = 0


class TypingEvent(Frame, tag="typing"):
    conv: str
    who: Literal["customer", "agent"]
    on: bool
    name: str = ""


class ConvState(Frame, tag="state"):
    """The conversation changed state (customer view and agent view)."""

    conv: str
    state: ConvStateName
    agent_name: str = ""
    reason: str = ""


class QueueStatus(Frame, tag="queue", omit_defaults=False):
    """The customer's place in the queue and the estimated wait."""

    conv: str
    group: str
    position: int
    eta_s: int | None = None  # None: no agent of that group is online now


class CustomerInfo(Struct, omit_defaults=True):
    name: str
    channel: str = "web"
    flags: list[str] = []
    lang: str = "zh"
    online: bool = True  # the customer's link is up (``presence`` tells of changes)


class HandoffInfo(Struct, omit_defaults=True):
    reason: str = ""
    group: str = ""
    priority: str = "normal"
    intents: list[str] = []
    bot_misses: int = 0
    transfer_note: str = ""
    transferred_from: str = ""


class Assigned(Frame, tag="assigned"):
    """A chat is now the agent's. Its history follows, then ``synced``."""

    conv: str
    customer: CustomerInfo
    handoff: HandoffInfo
    last_seq: int
    resumed: bool = False
    queue_wait_s: float = 0.0  # how long the customer waited for a person


class Presence(Frame, tag="presence"):
    """The customer of an assigned chat went offline (link lost) or came back.
    The chat stays the agent's: the customer may resume and read the answer."""

    conv: str
    online: bool


class Unassigned(Frame, tag="unassigned"):
    """The chat is no longer the agent's: closed, transferred, requeued..."""

    conv: str
    reason: str


class RatingRequest(Frame, tag="rating_request"):
    conv: str


class Synced(Frame, tag="synced"):
    """Everything up to ``last_seq`` has been sent; live traffic follows."""

    conv: str
    last_seq: int
    epoch: int = 0  # of the message at ``last_seq``: the client's cursor from now


class Resync(Frame, tag="resync"):
    """The hub cannot continue from the client's cursor: drop the local
    transcript of ``conv``; the full history follows, then ``synced``."""

    conv: str
    reason: str


class StatusEvent(Frame, tag="status"):
    """The agent's own status as the hub holds it."""

    status: Status
    max_chats: int
    load: int


class Error(Frame, tag="error"):
    """Something the client sent was refused. ``ref`` echoes its msg_id or type."""

    code: str
    message: str
    ref: str = ""
    conv: str = ""


class Ok(Frame, tag="ok"):
    """The command ``ref`` (a frame type) was carried out and is durable."""

    ref: str
    conv: str = ""


class Phrases(Frame, tag="phrases", omit_defaults=False):
    """Every phrase the user may see (team + own personal) and its usage
    rows ``[phrase_id, count, score, score_at, last_used]``."""

    phrases: list[Phrase]
    usage: list[tuple[str, int, float, float, float]] = []


class PhraseChanged(Frame, tag="phrase_changed", omit_defaults=False):
    """One phrase was added, edited or deleted (pushed live)."""

    id: str
    deleted: bool = False
    phrase: Phrase | None = None


class DirectoryAgent(Struct):
    id: str
    name: str
    status: str
    connected: bool
    load: int
    max_chats: int
    groups: list[str]


class Directory(Frame, tag="directory", omit_defaults=False):
    """Skill groups (with how many wait and how many agents are online) and agents."""

    groups: list[QueueRow]
    agents: list[DirectoryAgent]


class AuditEntry(Struct):
    id: int
    ts: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class AuditRows(Frame, tag="audit_rows", omit_defaults=False):
    rows: list[AuditEntry]


class PhraseStats(Frame, tag="phrase_stats", omit_defaults=False):
    """Rows of [phrase id, shortcode, title, uses today, uses in all]."""

    rows: list[tuple[str, str, str, int, int]]


class Watching(Frame, tag="watching", omit_defaults=False):
    """A supervisor now watches ``conv``: its history follows, then ``synced``.
    ``closed`` comes as a ``state`` frame; ``agent`` changes come as ``watching`` again."""

    conv: str
    customer: CustomerInfo
    handoff: HandoffInfo
    agent: str
    state: str
    last_seq: int


class BotMisses(Frame, tag="bot_misses", omit_defaults=False):
    """Rows of [question as last asked, times asked, last asked (unix time)]."""

    rows: list[tuple[str, int, float]]


class AgentRow(Struct):
    id: str
    name: str
    status: str
    connected: bool
    load: int
    max_chats: int
    groups: list[str] = []
    # conv id -> seconds since its customer's oldest unanswered message (0: none)
    chats: dict[str, float] = {}
    hand_raised: bool = False
    logged_in_at: float = 0.0
    # today's figures for this agent
    handled: int = 0
    first_response_p50_s: float | None = None
    handle_p50_s: float | None = None
    satisfaction: float | None = None  # (very satisfied + satisfied) / rated
    rated: int = 0
    # conv id -> its customer's name, for the chats in `chats` that this row
    # names for the first time (every chat on a full board). Absent when there
    # is none: a name is sent once, not with every wait update.
    customers: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class WaitingChat(Struct):
    """A chat waiting for a person, as the supervisors' board lists it."""

    conv: str
    customer: str  # the customer's name
    priority: str = "normal"  # urgent | priority | normal (elderly, disabled, VIP)
    wait_s: float = 0.0  # since the customer asked for a person
    flags: list[str] = []


# The board lists at most this many waiting chats per queue (the first to be served).
WAITING_LISTED = 50


class QueueRow(Struct):
    group: str
    waiting: int
    by_priority: dict[str, int] = {}
    longest_wait_s: float = 0.0
    eta_s: int | None = None
    agents_online: int = 0
    abandoned: int = 0  # today, while waiting
    # the last 30 minutes, one value a minute, oldest first
    arrivals: list[int] = []
    lengths: list[int] = []
    # on the supervisors' board only: the first WAITING_LISTED waiting, in serving order
    chats: list[WaitingChat] = []


class AlertRow(Struct, omit_defaults=True):
    kind: str  # raised_hand | failed_login | queue_wait | unanswered
    who: str
    at: float
    conv: str = ""
    customer: str = ""  # the name of `conv`'s customer


class Board(Frame, tag="board", omit_defaults=False):
    """Supervisor view. ``full`` replaces everything; otherwise rows update
    by id and ``removed`` lists agent ids that left the board."""

    full: bool
    agents: list[AgentRow] = []
    queues: list[QueueRow] = []
    removed: list[str] = []
    totals: dict[str, float] = {}
    alerts: list[AlertRow] = []


HubFrame = (
    Welcome
    | LoginOk
    | Ack
    | Msg
    | TypingEvent
    | ConvState
    | QueueStatus
    | Assigned
    | Presence
    | Unassigned
    | RatingRequest
    | Synced
    | Resync
    | StatusEvent
    | Error
    | Ok
    | Board
    | Phrases
    | PhraseChanged
    | BotMisses
    | Directory
    | AuditRows
    | PhraseStats
    | Watching
)

_client_decoder = msgspec.json.Decoder(ClientFrame)
_hub_decoder = msgspec.json.Decoder(HubFrame)
_encoder = msgspec.json.Encoder()


class FrameError(ValueError):
    """A client frame could not be decoded; ``code`` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode_client(data: str | bytes) -> ClientFrame:
    """Decode and validate one client frame, or raise FrameError."""
    try:
        return _client_decoder.decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "Invalid value" in text and "`$.type`" in text:
            return _raise("unknown_type", text)
        return _raise("bad_frame", text)
    except msgspec.DecodeError as exc:
        return _raise("bad_json", str(exc))


def _raise(code: str, message: str) -> Any:
    raise FrameError(code, message)


def decode_hub(data: str | bytes) -> HubFrame:
    """Decode a hub frame (used by clients)."""
    return _hub_decoder.decode(data)


def encode(frame: Struct) -> bytes:
    """Encode any frame to UTF-8 JSON bytes (send with ``text=True``)."""
    return _encoder.encode(frame)
