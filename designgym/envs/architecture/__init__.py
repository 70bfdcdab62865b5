"""Architectural design problems: floor plans and building massing."""
