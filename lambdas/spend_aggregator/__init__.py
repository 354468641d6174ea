"""Spend-log aggregator Lambda and its aggregation core (`aggregate`)."""
