"""The llmops package: settings, offline engine, plan, and the operator CLI."""

from pathlib import Path

# The Pulumi project (Pulumi.yaml, __main__.py, components/, stacks/) sits beside the package.
PROJECT_DIR = Path(__file__).resolve().parent.parent
