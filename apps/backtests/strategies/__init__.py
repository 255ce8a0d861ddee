"""Strategies: the registry of built-ins, the shared indicators, user-code sandbox and lookahead check.

Plain Python (no Django), like the engine. Import the registry functions from
``apps.backtests.strategies.registry`` and the sandbox from
``apps.backtests.strategies.sandbox``; this package itself stays light.
"""
