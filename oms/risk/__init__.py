"""Pre-trade risk (SEC 15c3-5 / FIA style): named checks with configured limits, exposure kept
incrementally, trading states as the kill switch. Pure: no I/O, the clock is injected.

See `oms.risk.engine` for the order of the checks and what each call records.
"""

from oms.risk.engine import RiskEngine
from oms.risk.limits import RiskConfig, RiskLimits
from oms.risk.state import Scope, TradingState
from oms.risk.view import OrderView

__all__ = ["OrderView", "RiskConfig", "RiskEngine", "RiskLimits", "Scope", "TradingState"]
