"""Terminal apps (agent desk, customer client, supervisor monitor) and the CLI."""
