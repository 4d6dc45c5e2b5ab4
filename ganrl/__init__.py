"""ganrl: generative adversarial user models and RL recommenders (Chen et al., ICML 2019)."""

__version__ = "0.1.0"
