"""Model registries: where model versions, their tags and their aliases live."""

from integrations.registry.base import ModelRegistry, ModelVersion

__all__ = ["ModelRegistry", "ModelVersion"]
