"""The customer simulator: scripted customers brought to a running hub.

Headless (no Textual). ``desk/simulate.py`` is the command line; this
package is the engine: scenarios (``desk/data/scenarios.yaml``), arrival
patterns, one HubClient per simulated customer, and the summary.
"""

from .arrivals import Steady, Surge, arrival_times
from .customer import ChatRecord, SimCustomer, Timing
from .report import Summary, percentile
from .runner import SimConfig, SimError, simulate
from .scenarios import DEFAULT_SCENARIOS, Scenario, ScenarioError, load_scenarios, parse_scenarios

__all__ = [
    "DEFAULT_SCENARIOS",
    "ChatRecord",
    "Scenario",
    "ScenarioError",
    "SimConfig",
    "SimCustomer",
    "SimError",
    "Steady",
    "Summary",
    "Surge",
    "Timing",
    "arrival_times",
    "load_scenarios",
    "parse_scenarios",
    "percentile",
    "simulate",
]
