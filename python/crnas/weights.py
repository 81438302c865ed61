"""Pretrained initialisation of reallocated backbones: the public name of :mod:`crnas.models.weights`."""

from crnas.models.weights import TORCHVISION_NAMES, InheritReport, inherit, torchvision_state_dict

__all__ = ["inherit", "InheritReport", "torchvision_state_dict", "TORCHVISION_NAMES"]
