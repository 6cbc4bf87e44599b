"""The one small exception family of smartdial."""


class SmartdialError(Exception):
    """Base of every error smartdial raises on purpose."""


class ConfigError(SmartdialError):
    """A configuration file is missing, unreadable or invalid."""


class ProtocolError(SmartdialError):
    """A peer sent something the protocol does not allow."""


class SolverError(SmartdialError):
    """The optimiser could not produce an allocation."""
