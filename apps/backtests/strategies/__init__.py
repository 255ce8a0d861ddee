"""Strategies: the registry of built-ins, the shared indicators, user-code sandbox and lookahead check.

Plain Python (no Django), like the engine. Import the registry functions from
``apps.backtests.strategies.registry`` and the sandbox from
``apps.backtests.strategies.sandbox``; this package itself stays light.
"""

#: The file name user strategy code is compiled under (in the sandbox and in the
#: lookahead check, which finds the offending user line by it). It lives here, the
#: package both import, so that lookahead and sandbox need not import each other.
USER_FILENAME = "<strategy>"
