"""Asterisk REST Interface: pure protocol (``protocol``), asyncio client (``client``) and the
adapter implementing the telephony port (``adapter``)."""
