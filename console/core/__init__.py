"""Textual-free core of routedeck: domain models, ports, statistics, simulator."""
