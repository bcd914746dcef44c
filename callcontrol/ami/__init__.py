"""Asterisk Manager Interface: pure message parsing (``protocol``) and the panoramisk wrapper
(``client``)."""
