"""{{ cookiecutter.project_name }}: a Kedro project that trains and serves an image classifier."""

import os

# TensorFlow's C++ start-up and runtime messages (CPU features, CUDA probing) stay out
# of every command's output; its errors still show. Set before TensorFlow is imported:
# importing any module of this package runs this first. A value you set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1"
