"""User-facing errors: printed as one clear line, never as a traceback wall."""


class FedtnaError(Exception):
    """Base class of errors caused by the user's input or environment."""


class ConfigError(FedtnaError):
    """A configuration value is out of its allowed range."""


class DatasetUnavailableError(FedtnaError):
    """A dataset's files are missing and cannot be downloaded."""


def out_of_range(key: str, value: object, allowed: str) -> ConfigError:
    """The one wording every range error uses: key, value and the allowed range."""
    return ConfigError(f"{key}={value!r} is outside the allowed range {allowed}")


class RunFailedError(FedtnaError):
    """A run that started could not finish (diverged, too few valid clients); finished rounds are kept."""

    exit_code = 3


class RunDivergedError(RunFailedError):
    """A run whose global model, test loss or client updates became non-finite (NaN/Inf)."""
