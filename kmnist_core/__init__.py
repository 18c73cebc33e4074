"""KMNIST Explorer core: data, regularization variants, training, metrics, run store.

Kept import-light on purpose: TensorFlow is imported only by the modules that build
or run models (`models`, `training`, `runner`), so the app's landing page and the
CLI's `runs`/`data` commands start fast.

From Python (a notebook, a script), the public API is ``from kmnist_core import api``
(a module of its own rather than names re-exported here: ``api.sweep`` and ``api.store``
would collide with the ``sweep`` and ``store`` modules). It writes to the same run store
as the CLI and the app.

- ``load_data(data_dir=None)``: the KMNIST arrays and where they came from.
- ``train(variant, name=None, progress=True, **settings)``: train a variant with settings
  changed (``epochs=5, dropout=0.3``), showing a progress bar; returns the finished run.
- ``sweep(param, values, variant="overfit", seeds=1, **settings)``: one run per value and
  seed; returns the summary per value. ``sweep_summary(sweep_id)`` reads a stored one.
- ``runs()``, ``get_run(id or name)``, ``load_model(id or name)``: the stored runs.
- ``compare(run_a, run_b)``: McNemar's exact test on their test predictions, with the
  Compare page's sentence.
- ``store(home=None)``: the ``RunStore`` itself.

Every function takes ``home=`` (default ``$KMNIST_HOME``, else ./runs). Bad settings raise
``ParameterError`` with the CLI's message. The figures of these runs (plotly, the app's
own) are in the app package's ``notebook`` module; this package never imports plotly.
"""

__version__ = "0.1.0"
