"""parsl.app.errors under farm: the errors an app's future can raise (farm.errors)."""

from farm.errors import (
    AppBadFormatting,
    AppException,
    AppTimeout,
    BadStdStreamFile,
    BashAppNoReturn,
    BashExitFailure,
    FarmError,
    MissingInputs,
    MissingOutputs,
    RemoteError,
    WorkerLost,
)

ParslError = FarmError
AppFailure = AppException

__all__ = ["AppBadFormatting", "AppException", "AppFailure", "AppTimeout", "BadStdStreamFile",
           "BashAppNoReturn", "BashExitFailure", "MissingInputs", "MissingOutputs",
           "ParslError", "RemoteError", "WorkerLost"]
