"""Federated learning on Flower: round plan, strategies, schedules, the apps, simulation, results.

Importing it changes no environment variable: the entry points that start Flower or Ray set
what they need (``fedtna.deploy.flwr_cli.FLOWER_ENV``, ``engines.ray.QUIET_ENVIRONMENT``).
"""
