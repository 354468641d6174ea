"""The prompt registry: file format, S3 library, app client. CLI in `llmops.prompts.cli`."""

from llmops.prompts.client import PromptClient, PromptUnavailable, ServedPrompt
from llmops.prompts.format import PromptFile, PromptRenderError, load_prompt_file, parse_prompt
from llmops.prompts.registry import PromptRegistry
from llmops.prompts.s3 import PromptConflict, PromptNotFound, StoreUnavailable

__all__ = [
    "PromptClient",
    "PromptConflict",
    "PromptFile",
    "PromptNotFound",
    "PromptRegistry",
    "PromptRenderError",
    "PromptUnavailable",
    "ServedPrompt",
    "StoreUnavailable",
    "load_prompt_file",
    "parse_prompt",
]
