"""Alertmanager configuration files (alertmanager.yml) read as Alertmanager reads them."""
