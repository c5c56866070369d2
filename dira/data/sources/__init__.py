"""Readers of the raw datasets exactly as they are distributed (real or synthetic, same code path)."""
