"""The Slack surface: a thin edge that parses Slack payloads, calls the domain, renders."""
