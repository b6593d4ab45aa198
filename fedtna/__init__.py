"""fedtna: federated learning with training-time neuron alignment (TNA-PFN) on Flower."""

__version__ = "0.1.0"
