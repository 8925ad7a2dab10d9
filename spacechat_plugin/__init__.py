"""Spacechat: the first-party chat surface and control plane for Spacebot."""

__version__ = "0.1.0"
