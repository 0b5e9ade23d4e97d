"""NAPALM driver for FRRouting: ``napalm.get_network_driver("frr")`` finds it by name."""

from napalm_frr.frr import FRRDriver

__all__ = ["FRRDriver"]
__version__ = "0.1.0"
