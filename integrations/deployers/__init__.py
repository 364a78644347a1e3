"""Deployers: what actually serves a model version to traffic."""

from integrations.deployers.base import Deployer, DeploymentState

__all__ = ["Deployer", "DeploymentState"]
