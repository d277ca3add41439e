"""The knowledge-base bot: answers a new chat first and hands off to a person.

Pure Python, no I/O beyond reading the KB file, no Textual. The hub builds one
with `KnowledgeBot(load_kb(path))` and swaps in a new one to reload the KB.
"""

from .engine import KnowledgeBot
from .kb import DEFAULT_KB_PATH, KBError, KnowledgeBase, load_kb
from .matcher import ANSWER_THRESHOLD, OFFER_THRESHOLD, Match, Matcher

__all__ = [
    "ANSWER_THRESHOLD",
    "DEFAULT_KB_PATH",
    "OFFER_THRESHOLD",
    "KBError",
    "KnowledgeBase",
    "KnowledgeBot",
    "Match",
    "Matcher",
    "load_kb",
]
