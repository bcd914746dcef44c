"""Test tooling kept out of the runtime package: test beds, fakes, sipp runs, waiting helpers.

Installed with the ``test`` extras; the daemon never imports it (an import-linter contract).
"""
