"""Lab fixtures: the whole lab once per session, a fast NetBox reset per test.

Every test under tests/lab carries the `lab` marker (tests/conftest.py adds it), so
`pytest -m "not lab"` runs the unit suite without them.
"""

from lab_fixtures import db1, device_ssh, host_ssh, lab, lab_reset  # noqa: F401
from netbox_fixtures import netbox_lab, netbox_reset  # noqa: F401
from rack_support import rack_lab  # noqa: F401
