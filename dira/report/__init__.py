"""Reporting: tables over seeds with significance tests, and the figures drawn from them."""
