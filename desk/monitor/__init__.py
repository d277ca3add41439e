"""The supervisor monitor: load, queues and quality live, and the
supervisor's actions (watch, whisper, reassign, agent settings)."""

from .app import SupervisorMonitor, make_monitor
from .config import MonitorConfig
from .model import BoardModel

__all__ = ["BoardModel", "MonitorConfig", "SupervisorMonitor", "make_monitor"]
