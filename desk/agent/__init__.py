"""The agent desk: five customers at once, and never a reply in the wrong chat."""

from .app import AgentDesk, make_agent_desk

__all__ = ["AgentDesk", "make_agent_desk"]
