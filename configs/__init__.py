"""The validated schema of the domain (operation, scenario) and the shipped example YAML.

`load(path)` reads either kind of file; `describe(obj)` summarises it for `smartdial config check`.
"""

from configs.load import describe, load, load_operation, load_scenario
from configs.scenario import Scenario
from configs.schema import Operation

__all__ = ["Operation", "Scenario", "describe", "load", "load_operation", "load_scenario"]
