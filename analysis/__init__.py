"""Support-driven retention analytics: every formula, loader and validator of the suite."""
from analysis.data.config import load_config
from analysis.data.dataset import Dataset, load_dataset
from analysis.errors import DataError, InputError

__all__ = ["load_config", "load_dataset", "Dataset", "DataError", "InputError"]
__version__ = "0.1.0"
