"""The bootstrap project: what the platform's stacks need before their first `pulumi up`, once per
AWS account (docs/ci.md). `__main__.py` is the Pulumi program; the modules are its components."""
