"""Lambda sources, one folder per function (see docs/cost.md, "Sharing the aggregation core").

Each folder is a Python package so the repository can import a Lambda's pure modules (the CLI
imports `lambdas.spend_aggregator.aggregate`) and tests can import the handlers. The deployed
zip holds the folder itself (`spend_aggregator/handler.py`, handler string
`spend_aggregator.handler.handler`), so the relative imports work unchanged in Lambda.
"""
