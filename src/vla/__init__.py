"""vla: Vision-Language-Action robot policies that train and run fast on a CPU."""

__version__ = "0.1.0"
