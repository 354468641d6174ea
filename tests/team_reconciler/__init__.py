"""Tests of the team reconciler Lambda against tests/stubs/litellm_admin_stub.py and moto."""
