"""Pulumi ComponentResources of the platform, one per file, named after what they own."""
