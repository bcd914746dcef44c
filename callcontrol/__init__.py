"""callcontrol: the control plane of a call center running on Asterisk 22 (ARI + AMI)."""

__version__ = "0.1.0"
