"""Notifier Lambda: SNS (alarms, budgets, cost anomalies) to a Slack incoming webhook."""
