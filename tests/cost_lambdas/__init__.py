"""Tests of the cost Lambdas and `llmops cost` (a package so helpers import as cost_lambdas.helpers)."""
