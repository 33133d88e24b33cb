"""Renderers: the same plain-data tables as a terminal (rich) table or markdown."""
