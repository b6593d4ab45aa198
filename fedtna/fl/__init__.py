"""Federated learning on Flower: round plan, strategies, schedules, the apps, simulation, results."""
