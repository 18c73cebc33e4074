"""KMNIST Explorer core: data, regularization variants, training, metrics, run store.

Kept import-light on purpose: TensorFlow is imported only by the modules that build
or run models (`models`, `training`, `runner`), so the app's landing page and the
CLI's `runs`/`data` commands start fast.
"""

__version__ = "0.1.0"
