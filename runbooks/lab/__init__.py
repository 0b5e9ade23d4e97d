"""The lab: a real NetBox, FRR network devices, Linux hosts and PostgreSQL on one machine."""
