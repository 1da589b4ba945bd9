"""The zoo: plain definitions of the seed networks, created by name.

>>> from staircase.models import create_model, list_models
>>> model = create_model("wrn_40_2", num_classes=10)
"""

from . import densenet, mobilenet, resnet, resnet_cifar, wrn  # noqa: F401  (registers the models)
from ._registry import create_model, is_model, list_models, model_description, register_model, register_pattern
from .base import ZooModel

__all__ = ["ZooModel", "create_model", "is_model", "list_models", "model_description", "register_model", "register_pattern"]
