"""Synthetic stand-ins written in the real datasets' on-disk layouts, so one reader serves both."""
