"""The eval harness: eval sets (`evals/<prompt>.yaml`), their assertions, the runner that sends
each case through the gateway, and coverage of served traffic. Import the submodules directly
(`llmops.evals.evalset`, `llmops.evals.assertions`, ...); this package imports nothing so that
loading one part does not pull in the others (the runner's HTTP client, litellm)."""
