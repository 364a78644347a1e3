"""Adapters to the outside world: model registries, deployers, metrics sources, alert sources.

Every adapter sits behind a small ``Protocol`` and raises only :class:`IntegrationError`
subclasses, so the domain never sees an ``httpx`` exception.
"""
