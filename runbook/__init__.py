"""dns-runbook: an incident runbook for DNS outages, run in about a second."""

__version__ = "0.2.0"
