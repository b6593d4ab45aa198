"""User-facing errors: printed as one clear line, never as a traceback wall."""


class FedtnaError(Exception):
    """Base class of errors caused by the user's input or environment."""


class ConfigError(FedtnaError):
    """A configuration value is out of its allowed range."""


class DatasetUnavailableError(FedtnaError):
    """A dataset's files are missing and cannot be downloaded."""
