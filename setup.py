"""ganrl: generative adversarial user models and RL recommenders in TensorFlow 2."""

import setuptools

_TF_VERSION = ">=2.21,<2.22"

setuptools.setup(
    name="ganrl",
    version="0.1.0",
    description=(
        "Generative adversarial user model and cascading-DQN recommender "
        "(Chen et al., ICML 2019) in TensorFlow 2."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["ganrl", "ganrl.*"]),
    python_requires=">=3.10",
    # TensorFlow itself comes from an extra: `tensorflow` and `tensorflow-cpu` are
    # different distributions and listing either here would pull it in beside the other.
    install_requires=[
        "numpy>=1.26,<3",
        "pandas>=2.0,<4",
        "scikit-learn>=1.3,<2",
        "absl-py>=2.0,<3",
        "tensorboard" + _TF_VERSION,
        "gymnasium>=1.0,<2",
        "matplotlib>=3.7,<4",
    ],
    extras_require={
        "cpu": ["tensorflow-cpu" + _TF_VERSION],
        "gpu": ["tensorflow[and-cuda]" + _TF_VERSION],
        # ruff: the formatter and linter CI runs (one small binary, no dependencies).
        "test": ["pytest>=8", "ruff>=0.6,<1"],
    },
)
