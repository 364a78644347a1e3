"""The web process: Slack endpoint, alert webhooks, health, metrics and pages."""
