"""The project's one exception type. Only the CLI entry point catches it."""

# Exit codes shared by every command.
EXIT_OK = 0
EXIT_NOT_FOUND = 1  # prompts: no such prompt/version; plan/policy: a mandatory violation;
# cost aggregate: a spend-log file that does not exist (docs/cost.md)
EXIT_USAGE = 2  # bad input: arguments, any file a command reads (llmops/inputs.py), settings
EXIT_CONFLICT = 3  # a conditional write lost, or a gate refused
# prompts audit: the history chain is broken or bucket versioning is off. Its own code, so a script
# tells "the trail cannot be trusted" from "could not run" (1, 2) and from a refused move (3).
EXIT_AUDIT_FAILED = 4
EXIT_INTERNAL = 70  # a bug: an exception that is not an LlmopsError (EX_SOFTWARE in sysexits.h)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class LlmopsError(Exception):
    """An error the user can act on: one message (possibly several lines) and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code
